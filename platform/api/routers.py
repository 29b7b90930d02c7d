"""Which routers make up the API, and the check that every route declares its roles.

Domain routers are named by dotted path (``"package.module:attribute"``) and imported when the app
is built, so a domain that is not written yet does not stop the others from serving: a missing
module is logged as an error and skipped. Add a domain by appending to :data:`DOMAIN_ROUTERS`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from voiceseal.api.deps import route_roles
from voiceseal.api.system import PUBLIC_PATHS
from voiceseal.runtime import Runtime

log = logging.getLogger(__name__)

#: Platform routers (always present).
CORE_ROUTERS: tuple[str, ...] = (
    "voiceseal.api.system:router",
    "voiceseal.tenants.endpoints:router",
    "voiceseal.keys.endpoints:router",
    "voiceseal.audit.events_endpoints:router",
)

#: Domain routers, mounted in this order after the core ones.
DOMAIN_ROUTERS: tuple[str, ...] = (
    "voiceseal.consents.endpoints:router",
    "voiceseal.voices.endpoints:router",
    "voiceseal.generations.endpoints:router",
    "voiceseal.audit.endpoints:router",
)

#: Where plugin routes (``register_routes`` hook) are mounted.
PLUGIN_PREFIX = "/v1/plugins/x"


def load_router(target: str, *, optional: bool) -> APIRouter | None:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the named module (or a parent package) being absent is tolerated; a missing
        # dependency inside an existing module is a real error and propagates.
        if not optional or exc.name is None or not module_name.startswith(exc.name):
            raise
        log.error("API router %s is not available (%s); its routes are not served", target, exc)
        return None
    router = getattr(module, attr or "router")
    if not isinstance(router, APIRouter):
        raise TypeError(f"{target} is a {type(router).__name__}, not a fastapi.APIRouter")
    return router


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    #: None for plain Starlette routes (the docs pages).
    dependant: Dependant | None
    name: str

    @property
    def roles(self) -> frozenset[str] | None:
        return None if self.dependant is None else route_roles(self.dependant)


def walk_routes(app: FastAPI) -> Iterator[RouteInfo]:
    """Every HTTP route the app serves, with included routers flattened."""
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path
        if path is None:
            continue
        dependant = getattr(ctx, "dependant", None)
        yield RouteInfo(
            path=path,
            methods=frozenset(ctx.methods or ()),
            dependant=dependant if isinstance(dependant, Dependant) else None,
            name=ctx.name or "",
        )


def check_route_roles(app: FastAPI) -> None:
    """Refuse to build an app with a non-public route that declares no roles."""
    unguarded = [
        f"{sorted(r.methods)} {r.path}"
        for r in walk_routes(app)
        if r.path not in PUBLIC_PATHS and r.roles is None
    ]
    if unguarded:
        raise RuntimeError(
            "routes without a role guard (use a voiceseal.api.deps *Dep alias or require_roles): "
            + ", ".join(unguarded)
        )


def mount_plugin_routes(app: FastAPI, runtime: Runtime) -> None:
    """Collect ``register_routes`` from every plugin; mount only routes that declare roles."""
    pm = runtime.pm
    accepted = APIRouter()
    for impl in pm.hook.register_routes.get_hookimpls():
        plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
        router = APIRouter()
        try:
            impl.function(router=router)
        except Exception as exc:  # a broken plugin must not take the API down
            log.error("plugin %s failed in register_routes: %s", plugin, exc)
            continue
        for route in router.routes:
            if isinstance(route, APIRoute) and route_roles(route.dependant) is not None:
                accepted.routes.append(route)
            else:
                log.error(
                    "plugin %s: route %s declares no roles (require_roles); refused",
                    plugin,
                    getattr(route, "path", route),
                )
    if accepted.routes:
        app.include_router(accepted, prefix=PLUGIN_PREFIX)
