"""Typed request dependencies: resources from the lifespan state, the session, and the role guards.

Endpoints declare what they need as keyword-only parameters::

    @router.post("/v1/things", status_code=201)
    def create_thing(*, body: ThingCreate, session: SessionDep, principal: AdminDep) -> ThingPublic:
        ...

Every route must declare its roles, through one of the ``*Dep`` principal aliases or
``require_roles(...)`` (in the signature or in ``dependencies=[...]``); ``create_app`` refuses to
start with a route that has none (the public allowlist aside), and the route-by-role test walks
every route. Authentication happens in the guard, before the request body is validated: a caller
without a valid key learns nothing about what the route would have accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from voiceseal import notifications
from voiceseal.errors import Forbidden, Unauthorized
from voiceseal.keys import service as keys_service
from voiceseal.keys.principal import Principal
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.kit.db import transaction
from voiceseal.registry.models import ROLES
from voiceseal.runtime import Runtime
from voiceseal.settings import Settings

__all__ = [
    "AdminDep",
    "AnyRoleDep",
    "AuditorDep",
    "BlobsDep",
    "Principal",
    "RoleGuard",
    "RuntimeDep",
    "SessionDep",
    "SessionMakerDep",
    "SettingsDep",
    "TenantDep",
    "current_principal",
    "require_roles",
    "route_roles",
]

#: Where the guard leaves the authenticated principal in the ASGI scope for later helpers
#: (idempotency, the validation-error handler) within the same request.
PRINCIPAL_SCOPE_KEY = "voiceseal.principal"

# --- lifespan resources -------------------------------------------------------------------------


def get_settings(request: HTTPConnection) -> Settings:
    return cast(Settings, request.state.settings)


def get_runtime(request: HTTPConnection) -> Runtime:
    return cast(Runtime, request.state.runtime)


def get_sessionmaker(request: HTTPConnection) -> sessionmaker[Session]:
    return cast("sessionmaker[Session]", request.state.sessionmaker)


def get_blobs(request: HTTPConnection) -> LocalBlobStore:
    return cast(LocalBlobStore, request.state.blobs)


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit after the endpoint returns, roll back if it raises.

    Scoped to the endpoint function, so the commit happens before the response is sent: a failed
    commit (lost database) becomes a 503 instead of a success the registry never saw.
    """
    with transaction(get_sessionmaker(request)) as session:
        notifications.bind(session, get_runtime(request).pm)
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
BlobsDep = Annotated[LocalBlobStore, Depends(get_blobs)]
#: For work that outlives the endpoint function (streamed responses): open your own transactions.
SessionMakerDep = Annotated["sessionmaker[Session]", Depends(get_sessionmaker)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# --- authentication and roles -------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer vs_…`")


def authenticate(request: HTTPConnection, token: str | None) -> Principal:
    """The principal for a bearer token, in its own short transaction (so the request's own
    transaction does not start as a writer just to refresh ``last_used_at``)."""
    cached = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(cached, Principal):
        return cached
    if not token:
        raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    settings = get_settings(request)
    with transaction(get_sessionmaker(request)) as session:
        principal = keys_service.authenticate(
            session, pepper=settings.key_pepper_bytes, presented=token
        )
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    return principal


def bearer_token(request: HTTPConnection) -> str | None:
    """The key from ``Authorization: Bearer <key>``, for code outside the dependency system."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class RoleGuard:
    """The dependency behind every role check; ``roles`` is read by the start-up check and tests."""

    def __init__(self, roles: Iterable[str]) -> None:
        self.roles = frozenset(roles)
        unknown = self.roles - set(ROLES)
        if not self.roles or unknown:
            raise ValueError(
                f"roles must be a non-empty subset of {ROLES}, got {sorted(self.roles)}"
            )

    def __repr__(self) -> str:
        return f"RoleGuard({sorted(self.roles)})"

    def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal = authenticate(request, credentials.credentials if credentials else None)
        self.check(principal)
        return principal

    def check(self, principal: Principal) -> None:
        if principal.role not in self.roles:
            allowed = " or ".join(sorted(self.roles))
            raise Forbidden(f"this needs an {allowed} key; the key given is a {principal.role} key")


def require_roles(*roles: str) -> Any:
    """``Depends`` on a guard admitting ``roles``; returns the :class:`Principal`."""
    return Depends(RoleGuard(roles))


AdminDep = Annotated[Principal, require_roles("admin")]
TenantDep = Annotated[Principal, require_roles("tenant")]
#: Auditors, and admins (who oversee everything an auditor can read).
AuditorDep = Annotated[Principal, require_roles("auditor", "admin")]
AnyRoleDep = Annotated[Principal, require_roles(*ROLES)]


def current_principal(request: HTTPConnection) -> Principal | None:
    """The principal a guard already authenticated in this request, if any."""
    found = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return found if isinstance(found, Principal) else None


def route_roles(dependant: Dependant) -> frozenset[str] | None:
    """Roles a route admits, from the guards in its dependency tree (None: no guard at all).

    Several guards on one route (router-level and endpoint-level) must all pass: intersection.
    """
    found: frozenset[str] | None = None
    stack = [dependant]
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, RoleGuard):
            found = dep.call.roles if found is None else found & dep.call.roles
        stack.extend(dep.dependencies)
    return found
