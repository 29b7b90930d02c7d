"""Wiring that lets domains land one by one: optional routers and command groups, key format."""

from __future__ import annotations

import logging

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from voiceseal import hookimpl
from voiceseal.api import app as app_module
from voiceseal.api.app import create_app
from voiceseal.api.routers import load_router
from voiceseal.cli.main import attach_optional
from voiceseal.cli.output import show_progress
from voiceseal.contracts import Register
from voiceseal.keys import tokens
from voiceseal.runtime import build_runtime
from voiceseal.settings import Settings


def test_missing_domain_router_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert load_router("voiceseal.not_written_yet.endpoints:router", optional=True) is None
    assert "voiceseal.not_written_yet.endpoints:router" in caplog.text
    with pytest.raises(ModuleNotFoundError):
        load_router("voiceseal.not_written_yet.endpoints:router", optional=False)
    with pytest.raises(TypeError, match=r"not a fastapi\.APIRouter"):
        load_router("voiceseal.api.system:PUBLIC_PATHS", optional=True)
    assert load_router("voiceseal.keys.endpoints:router", optional=True) is not None


def test_optional_command_groups() -> None:
    cli = typer.Typer()

    @cli.command()
    def noop() -> None:
        """Keep typer from collapsing a one-command app."""

    attached = attach_optional(
        cli,
        (
            ("voiceseal.cli.not_written_yet:app", "later"),
            ("voiceseal.cli.db_cmd:app", "database"),
        ),
    )
    assert attached == ["voiceseal.cli.db_cmd:app"]
    result = CliRunner().invoke(cli, ["--help"])
    assert "database" in result.stdout and "later" not in result.stdout


def test_no_progress_bars_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert show_progress() is False


class TestKeyFormat:
    def test_generated_keys_parse_back(self) -> None:
        for role, letter in tokens.ROLE_LETTERS.items():
            new = tokens.generate(role)
            assert new.secret.startswith(f"vs_{letter}_")
            assert tokens.prefix_of(new.secret) == new.prefix
            assert len(new.prefix) <= 24  # fits api_keys.prefix

    def test_malformed_keys_have_no_prefix(self) -> None:
        good = tokens.generate("admin")
        for bad in (
            "",
            "vs_a_",
            "vs_x_0123456789ab_secret",
            "vs_a_short_secret",
            "xx_a_0123456789ab_secret",
            good.prefix,
            good.prefix + "_",
        ):
            assert tokens.prefix_of(bad) is None, bad

    def test_hash_depends_on_pepper_and_key(self) -> None:
        new = tokens.generate("tenant")
        stored = tokens.digest(b"pepper-one", new.secret)
        assert tokens.matches(b"pepper-one", new.secret, stored)
        assert not tokens.matches(b"pepper-two", new.secret, stored)
        assert not tokens.matches(b"pepper-one", new.secret + "x", stored)
        assert new.secret.split("_", 3)[3] not in stored

    def test_unknown_role(self) -> None:
        with pytest.raises(ValueError, match="unknown role"):
            tokens.generate("root")


class _Closable:
    """A component with a ``close()``; the registry builds and closes it, nothing calls more."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def close(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} failed to close")


class _ClosablePlugin:
    """Two engines with a ``close()`` (as the gpt-sovits engine has), one failing to close."""

    def __init__(self) -> None:
        self.closed: list[str] = []

    @hookimpl
    def register_engines(self, register: Register) -> None:
        register("first", lambda ctx: _Closable("first", self.closed, fail=True), version="1")
        register("second", lambda ctx: _Closable("second", self.closed), version="1")


def test_an_app_closes_the_components_it_built_at_shutdown(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = _ClosablePlugin()
    real = app_module.build_runtime
    # The app builds its runtime as always, with one more (test) plugin among the entry points.
    monkeypatch.setattr(app_module, "build_runtime", lambda s: real(s, extra_plugins=[plugin]))
    with caplog.at_level(logging.ERROR), TestClient(create_app(settings)) as client:
        runtime = client.app_state["runtime"]
        runtime.engine("first"), runtime.engine("second")  # built on first use
        assert plugin.closed == []
    # Newest first; the failing close is logged and the other still ran.
    assert plugin.closed == ["second", "first"]
    assert "closing engine 'first' failed" in caplog.text
    # Closed components are forgotten: a later use builds a fresh one.
    assert runtime.engine("second") is not None

    # A runtime passed in belongs to its caller (shared between apps): left open.
    shared = build_runtime(settings, extra_plugins=[other := _ClosablePlugin()])
    with TestClient(create_app(settings, runtime=shared)):
        shared.engine("second")
    assert other.closed == []
