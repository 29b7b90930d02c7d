"""Operational routes: health, Prometheus metrics and the plugin inventory.

``/health`` and ``/metrics`` need no key: load balancers and Prometheus scrapers probe them, they
reveal no tenant data (metrics are labelled by method, route template and status only), and the
server listens on loopback unless told otherwise.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

import voiceseal
from voiceseal.api.deps import AdminDep, RuntimeDep, get_sessionmaker
from voiceseal.api.metrics import Metrics
from voiceseal.errors import Unavailable
from voiceseal.kit.db import transaction
from voiceseal.runtime import Runtime

router = APIRouter(tags=["system"])

#: Routes reachable without a key. Everything else must declare its roles.
PUBLIC_PATHS = frozenset(
    {"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/health", response_model=Health, responses={503: {"description": "Database down"}})
def health(request: Request) -> Response:
    """Liveness and readiness: 200 when the registry database answers, 503 otherwise."""
    try:
        with transaction(get_sessionmaker(request)) as session:
            session.execute(text("SELECT 1"))
    except Unavailable:
        body = Health(status="unavailable", version=voiceseal.__version__, database="unreachable")
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(
        Health(status="ok", version=voiceseal.__version__, database="ok").model_dump()
    )


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this app's metrics."""
    found: Metrics = request.state.metrics
    return Response(found.exposition(), media_type=CONTENT_TYPE_LATEST)


class PluginPublic(BaseModel):
    name: str
    module: str
    version: str
    hooks: list[str]
    status: str
    error: str | None


class ComponentPublic(BaseModel):
    kind: str
    name: str
    plugin: str
    version: str
    description: str
    aliases: list[str]
    available: bool
    unavailable_reason: str | None


class PluginsPublic(BaseModel):
    plugins: list[PluginPublic]
    components: list[ComponentPublic]


def describe_plugins(runtime: Runtime) -> PluginsPublic:
    return PluginsPublic(
        plugins=[
            PluginPublic(
                name=p.name,
                module=p.module,
                version=p.version,
                hooks=list(p.hooks),
                status=p.status,
                error=p.error,
            )
            for p in runtime.pm.describe()
        ],
        components=[ComponentPublic(**c) for c in runtime.components.describe()],
    )


@router.get("/v1/plugins", response_model=PluginsPublic)
def list_plugins(*, runtime: RuntimeDep, _: AdminDep) -> PluginsPublic:
    """Loaded and skipped plugins with their hooks and versions, and every registered component."""
    return describe_plugins(runtime)
