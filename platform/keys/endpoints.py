"""API-key routes (admin only). The secret is in the creating response and nowhere else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from voiceseal.api.deps import AdminDep, SessionDep, SettingsDep
from voiceseal.api.idempotency import IdempotencyDep
from voiceseal.api.pagination import Page, PageParamsDep, paginate
from voiceseal.errors import Conflict, InvalidInput, NotFound
from voiceseal.keys import repository, service
from voiceseal.keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from voiceseal.registry.models import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])

_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": NotFound.title},
    409: {"description": Conflict.title},
    422: {"description": InvalidInput.title},
}


@router.post("", status_code=201, response_model=ApiKeyCreated, responses=_ERRORS)
def create_key(
    *,
    body: ApiKeyCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: AdminDep,
    idem: IdempotencyDep,
) -> Response:
    """Create a key. The response holds the key itself: store it now, it is never shown again.

    With an ``Idempotency-Key``, a retry replays this same response (and so the same secret) to
    the same admin key for 24 hours, so the retry does not mint a second, unknown key.
    """
    if (replay := idem.begin(session)) is not None:
        return replay
    key, secret = service.create(
        session,
        pepper=settings.key_pepper_bytes,
        role=body.role,
        tenant_id=body.tenant_id,
        name=body.name,
        actor_key_id=principal.api_key_id,
    )
    created = ApiKeyCreated(**ApiKeyPublic.model_validate(key).model_dump(), key=secret)
    return idem.respond(session, created, status_code=201)


@router.get("", response_model=Page[ApiKeyPublic])
def list_keys(
    *,
    session: SessionDep,
    page: PageParamsDep,
    _: AdminDep,
    tenant_id: Annotated[str | None, Query(max_length=40)] = None,
    include_revoked: bool = False,
) -> Page[ApiKeyPublic]:
    """Keys, newest first, without secrets."""
    stmt = repository.listing(tenant_id=tenant_id, include_revoked=include_revoked)
    found = paginate(session, stmt, keys=(ApiKey.created_at, ApiKey.id), params=page)
    return Page[ApiKeyPublic].build(found, ApiKeyPublic.model_validate)


@router.get("/{key_id}", response_model=ApiKeyPublic, responses=_ERRORS)
def get_key(*, key_id: str, session: SessionDep, _: AdminDep) -> ApiKeyPublic:
    """One key, without its secret."""
    return ApiKeyPublic.model_validate(service.get(session, key_id))


@router.post("/{key_id}/revoke", response_model=ApiKeyPublic, responses=_ERRORS)
def revoke_key(*, key_id: str, session: SessionDep, principal: AdminDep) -> ApiKeyPublic:
    """Revoke a key; it is refused from its next request on. Revoking twice changes nothing."""
    key = service.revoke(session, key_id, actor_key_id=principal.api_key_id)
    return ApiKeyPublic.model_validate(key)
