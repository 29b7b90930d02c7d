"""Every route × every kind of caller: the auth layer answers first, and as each route declares.

Walks all routes the app serves (core, domains added later, plugin routes) so a new route is
covered the moment it exists. A route without declared roles fails here (and at start-up) unless
it is on the public allowlist.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import voiceseal
from voiceseal.api.deps import AuditorDep, require_roles
from voiceseal.api.routers import PLUGIN_PREFIX, RouteInfo, walk_routes
from voiceseal.api.system import PUBLIC_PATHS
from voiceseal.keys import service as keys_service
from voiceseal.kit.db import transaction
from voiceseal.registry.models import ApiKey
from voiceseal.settings import Settings

ROLES = ("admin", "tenant", "auditor")
GARBAGE = "vs_a_0123456789ab_not-a-real-key"
BODIES: list[dict[str, Any]] = [
    {},
    {"content": b"{not json", "headers": {"content-type": "application/json"}},
    {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
]


class GuardedPlugin:
    """A throwaway plugin adding one guarded and one unguarded route."""

    @voiceseal.hookimpl
    def register_routes(self, router: APIRouter) -> None:
        @router.post("/echo")
        def echo(*, principal: AuditorDep, body: dict[str, int]) -> dict[str, Any]:
            return {"role": principal.role, "body": body}

        @router.get("/open")
        def unguarded() -> dict[str, str]:
            return {"oops": "no roles"}


def _concrete(path: str) -> str:
    return re.sub(r"{[^}:]+:int}", "1", re.sub(r"{[^}:]+(:(str|path))?}", "missing", path))


def _guarded(app: FastAPI) -> list[tuple[RouteInfo, str]]:
    return [
        (r, m)
        for r in walk_routes(app)
        if r.path not in PUBLIC_PATHS
        for m in sorted(r.methods - {"HEAD"})
    ]


@pytest.fixture
def credentials(
    make_key: Any, session_factory: sessionmaker[Session], settings: Settings
) -> dict[str, str | None]:
    keys: dict[str, str | None] = {role: make_key(role) for role in ROLES}
    revoked = make_key("auditor", name="to revoke")
    with transaction(session_factory) as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.name == "to revoke")).one()
        keys_service.revoke(session, key_id, actor_key_id=None)
    keys.update({"none": None, "garbage": GARBAGE, "revoked": revoked})
    return keys


def test_every_route_declares_roles_or_is_public(app: FastAPI) -> None:
    routes = list(walk_routes(app))
    assert {"/health", "/v1/tenants", "/v1/keys", "/v1/audit/events"} <= {r.path for r in routes}
    missing = [r.path for r in routes if r.path not in PUBLIC_PATHS and not r.roles]
    assert missing == []


def test_walk_covers_every_documented_operation(app: FastAPI) -> None:
    documented = {
        (path, method.upper()) for path, ops in app.openapi()["paths"].items() for method in ops
    }
    walked = {(r.path, m) for r in walk_routes(app) for m in r.methods}
    assert documented <= walked


def _check_app(client: TestClient, credentials: dict[str, str | None], prefix: str = "") -> int:
    assert isinstance(client.app, FastAPI)
    checked = 0
    for route, method in _guarded(client.app):
        if not route.path.startswith(prefix):
            continue
        roles = route.roles
        assert roles, f"{method} {route.path} declares no roles"
        path = _concrete(route.path)
        for who, key in credentials.items():
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            # Broken bodies for the callers that must be refused before the body is looked at;
            # garbage and revoked keys take the same path as a missing one after the lookup.
            bodies = (
                BODIES if who not in roles and who not in ("garbage", "revoked") else BODIES[:1]
            )
            for body in bodies:
                merged = {**headers, **body.get("headers", {})}
                response = client.request(method, path, content=body.get("content"), headers=merged)
                where = f"{method} {route.path} as {who} with body {body.get('content')!r}"
                if who in ("none", "garbage", "revoked"):
                    assert response.status_code == 401, where
                    assert "Bearer" in response.headers.get("www-authenticate", ""), where
                elif who in roles:
                    assert response.status_code not in (401, 403), (where, response.text)
                else:
                    assert response.status_code == 403, (where, response.text)
                checked += 1
    return checked


def test_routes_answer_by_role(client: TestClient, credentials: dict[str, str | None]) -> None:
    assert _check_app(client, credentials) > 50


def test_plugin_routes_are_guarded_or_refused(
    plugin_client: Any, credentials: dict[str, str | None]
) -> None:
    with plugin_client(GuardedPlugin()) as client:
        paths = {r.path for r in walk_routes(client.app)}
        assert f"{PLUGIN_PREFIX}/echo" in paths
        assert f"{PLUGIN_PREFIX}/open" not in paths  # refused: no roles declared
        # No key x 3 bodies, garbage and revoked keys once, the tenant role x 3 bodies,
        # admin and auditor once each.
        assert _check_app(client, credentials, prefix=PLUGIN_PREFIX) == 10
        ok = client.post(
            f"{PLUGIN_PREFIX}/echo",
            json={"a": 1},
            headers={"Authorization": f"Bearer {credentials['auditor']}"},
        )
        assert ok.status_code == 200
        assert ok.json() == {"role": "auditor", "body": {"a": 1}}


def test_core_route_without_roles_refuses_to_start(settings: Settings) -> None:
    from voiceseal.api.routers import check_route_roles

    app = FastAPI()
    app.get("/v1/leak")(lambda: {"x": 1})
    with pytest.raises(RuntimeError, match="/v1/leak"):
        check_route_roles(app)
    guarded = FastAPI()
    guarded.get("/v1/fine", dependencies=[require_roles("admin")])(lambda: {"x": 1})
    check_route_roles(guarded)
