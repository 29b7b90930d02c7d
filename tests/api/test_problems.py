"""Error documents: RFC 9457 problem+json, OpenAI's shape on its routes, clean 500s and 503s."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import voiceseal
from voiceseal.api import problems
from voiceseal.api.app import create_app
from voiceseal.api.deps import AdminDep, TenantDep
from voiceseal.api.routers import PLUGIN_PREFIX
from voiceseal.errors import PolicyRefused
from voiceseal.kit.db import transaction
from voiceseal.registry.models import AuditEvent, Tenant
from voiceseal.runtime import Runtime
from voiceseal.settings import Settings

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class FailingPlugin:
    """Routes that fail in the ways the handlers must render."""

    @voiceseal.hookimpl
    def register_routes(self, router: APIRouter) -> None:
        @router.get("/crash")
        def crash(*, _: AdminDep) -> None:
            raise RuntimeError("internal detail: /srv/secret/path password=hunter2")

        @router.post("/speech")
        def speech(*, _: TenantDep, body: dict[str, str]) -> None:
            raise PolicyRefused("consent for this voice was revoked", param="voice")


def test_problem_shape_for_domain_error(client: TestClient, admin_key: str) -> None:
    response = client.get("/v1/tenants/ten_missing", headers=auth(admin_key))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == 404 and body["code"] == "not_found"
    assert body["type"] == "urn:voiceseal:problem:not_found"
    assert body["instance"] == "/v1/tenants/ten_missing"
    assert "ten_missing" in body["detail"]


def test_validation_problem_lists_fields(client: TestClient, admin_key: str) -> None:
    response = client.post(
        "/v1/tenants", json={"name": 5, "rate_limit_per_minute": "many"}, headers=auth(admin_key)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_input"
    fields = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "name") in fields and ("body", "rate_limit_per_minute") in fields
    assert "(and 1 more)" in body["detail"]
    assert all("input" not in e for e in body["errors"])


def test_unknown_route_and_method(client: TestClient) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = client.delete("/health")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_unauthorized_has_bearer_challenge(client: TestClient) -> None:
    response = client.get("/v1/keys")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"


def test_500_reveals_nothing(plugin_client: Any, admin_key: str) -> None:
    with plugin_client(FailingPlugin()) as client:
        response = client.get(f"{PLUGIN_PREFIX}/crash", headers=auth(admin_key))
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "hunter2" not in response.text and "secret" not in response.text


def test_openai_routes_answer_openai_errors(
    plugin_client: Any, monkeypatch: pytest.MonkeyPatch, tenant_key: str
) -> None:
    path = f"{PLUGIN_PREFIX}/speech"
    monkeypatch.setattr(
        problems, "OPENAI_COMPATIBLE_PATHS", problems.OPENAI_COMPATIBLE_PATHS | {path}
    )
    with plugin_client(FailingPlugin()) as client:
        refused = client.post(path, json={"voice": "v"}, headers=auth(tenant_key))
        unauthenticated = client.post(path, json={})
        invalid = client.post(path, json={"voice": 3}, headers=auth(tenant_key))
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "message": "consent for this voice was revoked",
            "type": "permission_error",
            "param": "voice",
            "code": "policy_refused",
        }
    }
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["type"] == "authentication_error"
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "voice"


def test_builtin_openai_paths(client: TestClient) -> None:
    for path in ("/v1/audio/speech", "/v1/models", "/v1/voices/voice_x"):
        assert problems.is_openai_path(path)
        response = client.post(path) if path.endswith("speech") else client.get(path)
        assert response.status_code in (401, 404, 405)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert not problems.is_openai_path("/v1/voicesX")


def test_database_unreachable_is_503(
    unreachable_settings: Settings, runtime: Runtime, admin_key: str
) -> None:
    with TestClient(create_app(unreachable_settings, runtime=runtime)) as client:
        response = client.get("/v1/tenants", headers=auth(admin_key))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unavailable"
    assert "postgres" not in response.text.lower() and "sqlite" not in response.text.lower()


def test_database_lost_mid_request_leaves_nothing(
    client: TestClient,
    admin_key: str,
    session_factory: sessionmaker[Session],
) -> None:
    """The connection fails after the tenant row was written, at the audit insert: 503, and
    the tenant row is rolled back with it."""
    from sqlalchemy import event

    engine = client.app_state["engine"]
    dbapi = engine.dialect.loaded_dbapi

    def lose_connection(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
            raise dbapi.OperationalError("server closed the connection unexpectedly")

    event.listen(engine, "before_cursor_execute", lose_connection)
    try:
        response = client.post("/v1/tenants", json={"name": "half"}, headers=auth(admin_key))
    finally:
        event.remove(engine, "before_cursor_execute", lose_connection)
    assert response.status_code == 503, response.text
    with transaction(session_factory) as session:
        assert session.scalars(select(Tenant).where(Tenant.name == "half")).first() is None
        actions = session.scalars(select(AuditEvent.action)).all()
        assert "tenant.created" not in actions
    # The app recovers once the database is back.
    again = client.post("/v1/tenants", json={"name": "half"}, headers=auth(admin_key))
    assert again.status_code == 201
