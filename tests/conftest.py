"""Shared fixtures: a migrated registry on SQLite and PostgreSQL, settings, the app, keys.

Every test that uses ``database_url`` (directly or through ``settings``, ``app``, ``client``,
``session_factory`` or the key fixtures) runs twice: on a fresh SQLite file and on PostgreSQL
(``postgres`` marker). Both schemas are made by ``alembic upgrade head``, once per test session:

- SQLite: the migrated file is copied for each test (a copy is much faster than migrating);
- PostgreSQL: a database ``vs_test_<random>`` is created on the server named by
  ``VOICESEAL_TEST_PG_URL`` (default: the local server's ``test`` database) and dropped at the end;
  each test starts from emptied tables (rows deleted, audit head re-seeded).

If PostgreSQL cannot be reached the postgres half is skipped with the reason, except when ``CI`` is
set: CI must run both, so there it fails. Likewise under ``CI`` a test skipped for any reason other
than a real absence on that machine (no CUDA device, no Triton, no ``audiowmark`` program; see
``CI_ALLOWED_SKIPS``) fails the run: ``make test`` installs every extra, so an ``importorskip``
that fires there means a missing install step, not an optional package.

Keys: ``admin_key``, ``auditor_key`` and ``tenant_key`` (for the ``tenant`` fixture) are real keys
made through the keys service; ``make_key(role, tenant_id=None)`` and ``make_tenant(name=None)``
make more. Send them as ``{"Authorization": f"Bearer {key}"}``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, delete, insert, make_url, pool, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.api.app import create_app
from voiceseal.keys import service as keys_service
from voiceseal.kit.db import make_engine, make_sessionmaker, transaction
from voiceseal.kit.migrate import upgrade
from voiceseal.registry.models import AuditHead, Base, Tenant
from voiceseal.runtime import Runtime, build_runtime
from voiceseal.settings import Settings

PG_SERVER_URL = os.environ.get(
    "VOICESEAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_WATERMARK_KEY = "test-watermark-key-9f2c41d7e8a35b60"
TEST_KEY_PEPPER = "test-key-pepper-51c0a9e3d27f48b6"

# --- databases ----------------------------------------------------------------------------------


#: Skip reasons CI accepts: things its machine really lacks (no GPU, Triton only on GPU hosts,
#: audiowmark is not installable here).
CI_ALLOWED_SKIPS = ("needs a CUDA device", "Triton is not installed", "audiowmark not found")
_unexpected_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _note_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _note_skip(report)  # a module-level importorskip skips at collection


def _note_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and os.environ.get("CI"):
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
        if not any(allowed in reason for allowed in CI_ALLOWED_SKIPS):
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected_skips:
        print(
            "\nCI: tests skipped for something `make test` installs:",
            *_unexpected_skips,
            sep="\n  ",
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def hubert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random HuBERT saved like chinese-hubert-base (768 wide, as the SoVITS ssl_proj
    requires), for the GPT-SoVITS engine's tests: the real one cannot be downloaded here."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("tiny-hubert")
    torch.manual_seed(0)
    config = transformers.HubertConfig(
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=8,
    )
    transformers.HubertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get copies."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database created and migrated for this test session."""
    server = make_url(PG_SERVER_URL)
    admin = create_engine(
        server,
        isolation_level="AUTOCOMMIT",
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": 3},
    )
    name = f"vs_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL at {server.render_as_string()} is not reachable: " + " ".join(
            str(exc.orig).split()
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)", pytrace=False)
        pytest.skip(reason)
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _postgres_cleaner(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def _empty_postgres(engine: Engine) -> None:
    # DELETE, children first: on a few rows it is ~50x faster than TRUNCATE (which makes new
    # files for every table). Serial ids keep counting; no test depends on their values.
    with engine.begin() as conn:
        # A connection leaked by a previous test must fail this loudly, not hang the run.
        conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
        conn.execute(insert(AuditHead).values(id=1, seq=0, last_hash="0" * 64))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty registry database for one test (see the module docstring)."""
    if request.param == "sqlite":
        target = tmp_path / "registry.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    _empty_postgres(request.getfixturevalue("_postgres_cleaner"))
    return str(request.getfixturevalue("postgres_url"))


# --- settings, runtime, app ---------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=database_url,
        watermark_key=SecretStr(TEST_WATERMARK_KEY),
        key_pepper=SecretStr(TEST_KEY_PEPPER),
    )


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    """The real runtime: plugins load from their entry points, as in production."""
    return build_runtime(settings)


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> FastAPI:
    return create_app(settings, runtime=runtime)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client with the app's lifespan running (engine open, blob store ready)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """The test's own engine on the same database as the app (for setup and assertions)."""
    eng = make_engine(settings.resolved_database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Use as ``with transaction(session_factory) as session: ...`` (commits on success)."""
    return make_sessionmaker(engine)


# --- tenants and keys ---------------------------------------------------------------------------

MakeTenant = Callable[..., Tenant]
MakeKey = Callable[..., str]


@pytest.fixture
def make_tenant(session_factory: sessionmaker[Session]) -> MakeTenant:
    def make(
        name: str | None = None,
        *,
        rate_limit_per_minute: int | None = None,
        char_quota_per_day: int | None = None,
        status: str = "active",
    ) -> Tenant:
        with transaction(session_factory) as session:
            tenant = Tenant(
                name=name or f"tenant-{secrets.token_hex(4)}",
                status=status,
                rate_limit_per_minute=rate_limit_per_minute,
                char_quota_per_day=char_quota_per_day,
            )
            session.add(tenant)
        return tenant

    return make


@pytest.fixture
def make_key(
    session_factory: sessionmaker[Session], settings: Settings, make_tenant: MakeTenant
) -> MakeKey:
    """``make_key(role, tenant_id=None, name="")`` -> the secret; a tenant key without
    ``tenant_id`` gets a fresh tenant."""

    def make(role: str, tenant_id: str | None = None, name: str = "") -> str:
        if role == "tenant" and tenant_id is None:
            tenant_id = make_tenant().id
        with transaction(session_factory) as session:
            _, secret = keys_service.create(
                session,
                pepper=settings.key_pepper_bytes,
                role=role,
                tenant_id=tenant_id,
                name=name or f"test {role}",
                actor_key_id=None,
            )
        return secret

    return make


@pytest.fixture
def tenant(make_tenant: MakeTenant) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def admin_key(make_key: MakeKey) -> str:
    return make_key("admin")


@pytest.fixture
def auditor_key(make_key: MakeKey) -> str:
    return make_key("auditor")


@pytest.fixture
def tenant_key(make_key: MakeKey, tenant: Tenant) -> str:
    return make_key("tenant", tenant.id)
