"""Every hook is documented, implemented by a test plugin, and reached by the platform."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from voiceseal import hookspecs
from voiceseal.api.app import create_app
from voiceseal.runtime import build_runtime
from voiceseal.settings import Settings

from .every_hook import EveryHook

README = Path(__file__).resolve().parents[2] / "README.md"
HOOKS = sorted(
    name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "voiceseal_spec")
)


def test_hooks_exist() -> None:
    assert len(HOOKS) == 12, HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    doc = inspect.getdoc(fn) or ""
    assert len(doc.splitlines()[0]) > 10, f"{hook} has no summary line"
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{hook}: parameter {param!r} is undocumented"
    assert f"`{hook}" in README.read_text(), f"{hook} is missing from the README's hook table"


def test_the_test_plugin_implements_every_hook() -> None:
    implemented = {
        name for name, fn in inspect.getmembers(EveryHook) if hasattr(fn, "voiceseal_impl")
    }
    assert implemented == set(HOOKS)


@pytest.fixture
def plugin() -> EveryHook:
    return EveryHook()


@pytest.fixture
def hooked_client(settings: Settings, plugin: EveryHook) -> Iterator[TestClient]:
    runtime = build_runtime(settings, extra_plugins=[plugin])
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield client


def test_components_routes_and_listing(
    hooked_client: TestClient, admin_key: str, tenant_key: str
) -> None:
    h = {"Authorization": f"Bearer {admin_key}"}
    listing = hooked_client.get("/v1/plugins", headers=h).json()
    text = str(listing)
    for name in ("tones", "inverse-rfft", "mean-level", "centroid", "energy", "shout", "never"):
        assert name in text, name
    assert "a test scheme that is never available" in text
    assert hooked_client.get("/v1/plugins/x/every-hook/ping", headers=h).json() == {"pong": "admin"}
    r = hooked_client.get(
        "/v1/plugins/x/every-hook/ping", headers={"Authorization": f"Bearer {tenant_key}"}
    )
    assert r.status_code == 403


def test_cli_command_from_a_plugin(plugin: EveryHook) -> None:
    import typer

    app = typer.Typer()
    plugin.register_commands(cli=app)

    @app.callback()
    def _root() -> None:
        """The root the platform's CLI provides."""

    assert "every hook says hello" in CliRunner().invoke(app, ["every-hook"]).output


def test_consent_notifications_fire_after_commit(
    hooked_client: TestClient,
    plugin: EveryHook,
    admin_key: str,
    tenant,  # type: ignore[no-untyped-def]
) -> None:
    h = {"Authorization": f"Bearer {admin_key}"}
    c = hooked_client.post(
        "/v1/audio/voice_consents",
        headers=h,
        json={"speaker_name": "N", "tenants": [tenant.id], "purposes": ["tts"]},
    ).json()
    hooked_client.post(
        f"/v1/audio/voice_consents/{c['id']}/revoke", headers=h, json={"reason": "r"}
    )
    assert [(r["consent_id"], r["event"]) for r in plugin.consents] == [
        (c["id"], "issued"),
        (c["id"], "revoked"),
    ]
    bad = hooked_client.post(f"/v1/audio/voice_consents/{c['id']}/revoke", headers=h, json={})
    assert bad.status_code == 409
    assert len(plugin.consents) == 2  # the refused request rolled back: nothing was notified
