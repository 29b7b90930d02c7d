"""The core CLI: db, keys, tenants, audit verify, plugins — output, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from voiceseal.cli.main import app
from voiceseal.errors import Unauthorized
from voiceseal.keys import service as keys_service
from voiceseal.kit import migrate
from voiceseal.kit.db import transaction
from voiceseal.registry.models import AuditEvent
from voiceseal.settings import Settings

runner = CliRunner()


@pytest.fixture
def env(settings: Settings) -> dict[str, str | None]:
    assert settings.key_pepper is not None and settings.database_url is not None
    return {
        "VOICESEAL_DATA_DIR": str(settings.data_dir),
        "VOICESEAL_DATABASE_URL": settings.database_url,
        "VOICESEAL_KEY_PEPPER": settings.key_pepper.get_secret_value(),
        "VOICESEAL_WATERMARK_KEY": "cli-test-watermark-key",
    }


def run(env: dict[str, str | None], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_db_upgrade_and_check_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    # No database URL: the default SQLite file inside the (not yet existing) data folder.
    env = {"VOICESEAL_DATA_DIR": str(tmp_path / "fresh" / "data"), "VOICESEAL_DATABASE_URL": None}
    code, out, err = run(env, "db", "check")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    code, out, _ = run(env, "db", "upgrade")
    assert code == 0 and out.startswith("database at revision ")
    assert (tmp_path / "fresh" / "data" / "voiceseal.db").is_file()
    code, out, _ = run(env, "db", "check")
    assert code == 0 and "up to date" in out


def test_db_check_passes_on_the_test_database(env: dict[str, str | None]) -> None:
    code, out, err = run(env, "db", "check")
    assert code == 0, err
    assert "up to date" in out


def test_keys_create_prints_the_secret_once(
    env: dict[str, str | None], settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    code, out, err = run(env, "keys", "create", "--role", "admin", "--name", "first")
    assert code == 0, err
    secret = out.strip()
    assert out.count("\n") == 1 and secret.startswith("vs_a_")
    assert "shown only this once" in err and secret not in err
    with transaction(session_factory) as session:
        principal = keys_service.authenticate(
            session, pepper=settings.key_pepper_bytes, presented=secret
        )
    assert principal.role == "admin"
    code, out, _ = run(env, "keys", "list", "--json")
    [listed] = json.loads(out)
    assert listed["name"] == "first" and "key" not in listed
    assert secret not in out and secret.split("_", 3)[3] not in out


def test_keys_for_a_tenant_by_name_and_revoke(
    env: dict[str, str | None], settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    code, out, err = run(env, "tenants", "create", "acme", "--rate-limit", "7", "--json")
    assert code == 0, err
    tenant = json.loads(out)
    assert tenant["name"] == "acme" and tenant["rate_limit_per_minute"] == 7
    code, out, err = run(env, "keys", "create", "--role", "tenant", "--tenant", "acme", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["tenant_id"] == tenant["id"] and created["key"].startswith("vs_t_")
    code, out, _ = run(env, "keys", "list")
    assert created["id"] in out and "TENANT_ID" in out.splitlines()[0]
    code, out, _ = run(env, "keys", "revoke", created["id"])
    assert code == 0 and created["id"] in out
    with transaction(session_factory) as session, pytest.raises(Unauthorized):
        keys_service.authenticate(
            session, pepper=settings.key_pepper_bytes, presented=created["key"]
        )
    code, out, _ = run(env, "tenants", "list", "--json")
    assert [t["id"] for t in json.loads(out)] == [tenant["id"]]


def test_errors_are_one_line(env: dict[str, str | None]) -> None:
    for args in (
        ["keys", "create", "--role", "tenant", "--tenant", "nobody"],
        ["keys", "create", "--role", "root"],
        ["keys", "revoke", "key_missing"],
        ["tenants", "create", "  "],
    ):
        code, out, err = run(env, *args)
        assert code == 1, (args, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1, (args, err)
        assert out == ""
    code, _, err = run(env, "keys", "create")
    assert code == 2 and "--role" in err


def test_database_unreachable_is_one_line(env: dict[str, str | None], tmp_path: Path) -> None:
    broken = {**env, "VOICESEAL_DATABASE_URL": f"sqlite:///{tmp_path}/none/here/x.db"}
    code, _, err = run(broken, "keys", "list")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1


def test_audit_verify_finds_tampering(
    env: dict[str, str | None], session_factory: sessionmaker[Session]
) -> None:
    run(env, "tenants", "create", "one")
    run(env, "tenants", "create", "two")
    code, out, _ = run(env, "audit", "verify")
    assert code == 0 and "2 events verified" in out
    with transaction(session_factory) as session:
        session.execute(
            update(AuditEvent).where(AuditEvent.seq == 1).values(data={"name": "forged"})
        )
    code, out, _ = run(env, "audit", "verify", "--json")
    assert code == 1
    assert json.loads(out) == {
        "ok": False,
        "checked": 0,
        "first_bad_seq": 1,
        "problem": "event 1 was edited after it was written",
    }
    code, out, _ = run(env, "audit", "verify")
    assert code == 1 and "BROKEN at event 1" in out


def test_plugins_json(env: dict[str, str | None]) -> None:
    code, out, err = run(env, "plugins", "--json")
    assert code == 0, err
    described = json.loads(out)
    assert set(described) == {"plugins", "components"}
    code, out, _ = run(env, "plugins")
    assert code == 0 and out.startswith("PLUGINS")


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        "VOICESEAL_DATA_DIR": str(tmp_path / "data"),
        "VOICESEAL_DATABASE_URL": None,
    }
    code, out, err = run(env, "serve", "--port", "8999")
    assert code == 1 and out == ""
    assert err == (
        "error: the database is at revision none, not "
        f"{migrate.head()}: run `voiceseal db upgrade` first\n"
    )
