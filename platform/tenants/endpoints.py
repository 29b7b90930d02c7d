"""Tenant routes: admins manage tenants; a tenant key may read its own tenant."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from voiceseal.api.deps import AdminDep, Principal, SessionDep, require_roles
from voiceseal.api.idempotency import IdempotencyDep
from voiceseal.api.pagination import Page, PageParamsDep, paginate
from voiceseal.errors import Conflict, InvalidInput, NotFound
from voiceseal.registry.models import Tenant
from voiceseal.tenants import repository, service
from voiceseal.tenants.schemas import TenantCreate, TenantPublic, TenantUpdate

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])

_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": NotFound.title},
    409: {"description": Conflict.title},
    422: {"description": InvalidInput.title},
}


@router.post("", status_code=201, response_model=TenantPublic, responses=_ERRORS)
def create_tenant(
    *, body: TenantCreate, session: SessionDep, principal: AdminDep, idem: IdempotencyDep
) -> Response:
    """Create a tenant (names are unique)."""
    if (replay := idem.begin(session)) is not None:
        return replay
    tenant = service.create(session, body, actor_key_id=principal.api_key_id)
    return idem.respond(session, TenantPublic.model_validate(tenant), status_code=201)


@router.get("", response_model=Page[TenantPublic])
def list_tenants(
    *,
    session: SessionDep,
    page: PageParamsDep,
    _: AdminDep,
    status: Annotated[Literal["active", "suspended"] | None, Query()] = None,
) -> Page[TenantPublic]:
    """Tenants, newest first."""
    found = paginate(
        session, repository.listing(status=status), keys=(Tenant.created_at, Tenant.id), params=page
    )
    return Page[TenantPublic].build(found, TenantPublic.model_validate)


@router.get("/{tenant_id}", response_model=TenantPublic, responses=_ERRORS)
def get_tenant(
    *,
    tenant_id: str,
    session: SessionDep,
    principal: Annotated[Principal, require_roles("admin", "tenant")],
) -> TenantPublic:
    """One tenant. A tenant key sees only its own tenant."""
    return TenantPublic.model_validate(service.get(session, tenant_id, viewer=principal))


@router.patch("/{tenant_id}", response_model=TenantPublic, responses=_ERRORS)
def update_tenant(
    *, tenant_id: str, body: TenantUpdate, session: SessionDep, principal: AdminDep
) -> TenantPublic:
    """Suspend or reactivate a tenant, or change its limits (null returns to the default)."""
    tenant = service.update(session, tenant_id, body, actor_key_id=principal.api_key_id)
    return TenantPublic.model_validate(tenant)
