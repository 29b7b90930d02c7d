"""API-key lifecycle and request authentication.

The secret exists in memory only while the creating call returns it; rows hold the lookup prefix
and an HMAC of the key (see :mod:`voiceseal.keys.tokens`). Audit events name keys by id, never
by secret.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from voiceseal.audit import chain
from voiceseal.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from voiceseal.keys import repository, tokens
from voiceseal.keys.principal import Principal
from voiceseal.registry.base import utcnow
from voiceseal.registry.models import ROLES, ApiKey
from voiceseal.tenants import repository as tenants_repository

#: ``last_used_at`` is refreshed at most this often per key: a write on every request would make
#: every authenticated call a writer (SQLite has one) for a value nobody needs to the second.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def create(
    session: Session,
    *,
    pepper: bytes,
    role: str,
    tenant_id: str | None,
    name: str = "",
    actor_key_id: str | None,
) -> tuple[ApiKey, str]:
    """Make a key; returns the row and the secret, which the caller shows once and forgets."""
    if role not in ROLES:
        raise InvalidInput(
            f"unknown role {role!r}; expected one of {', '.join(ROLES)}", param="role"
        )
    if role == "tenant":
        if not tenant_id:
            raise InvalidInput("a tenant key needs a tenant", param="tenant_id")
        tenant = tenants_repository.get(session, tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}")
    elif tenant_id:
        raise InvalidInput(f"an {role} key belongs to no tenant", param="tenant_id")
    new = tokens.generate(role)
    key = repository.add(
        session,
        ApiKey(
            prefix=new.prefix,
            hash=tokens.digest(pepper, new.secret),
            name=name,
            role=role,
            tenant_id=tenant_id if role == "tenant" else None,
            scopes=[],
        ),
    )
    chain.append(
        session,
        "api_key.created",
        actor_key_id=actor_key_id,
        tenant_id=key.tenant_id,
        subject_type="api_key",
        subject_id=key.id,
        data={"prefix": key.prefix, "role": role, "name": name},
    )
    return key, new.secret


def revoke(session: Session, key_id: str, *, actor_key_id: str | None) -> ApiKey:
    """Revoke a key (effective at its next request). Revoking a revoked key changes nothing."""
    key = repository.get(session, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id!r}")
    if key.revoked_at is not None:
        return key
    if key.role == "admin" and repository.count_active_admins(session) <= 1:
        raise Conflict("this is the last active admin key; create another admin key first")
    key.revoked_at = utcnow()
    session.flush()
    chain.append(
        session,
        "api_key.revoked",
        actor_key_id=actor_key_id,
        tenant_id=key.tenant_id,
        subject_type="api_key",
        subject_id=key.id,
        data={"prefix": key.prefix},
    )
    return key


def get(session: Session, key_id: str) -> ApiKey:
    key = repository.get(session, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id!r}")
    return key


def authenticate(
    session: Session, *, pepper: bytes, presented: str, now: datetime | None = None
) -> Principal:
    """The principal behind a presented key; ``Unauthorized`` for anything but a live key."""
    # One message for every failure, so a caller cannot probe which prefixes exist.
    invalid = Unauthorized("the API key is missing, invalid or revoked")
    prefix = tokens.prefix_of(presented)
    if prefix is None:
        raise invalid
    found = repository.get_with_tenant(session, prefix)
    if found is None:
        # Spend the same HMAC as a hit so response timing does not tell prefixes apart.
        tokens.matches(pepper, presented, "0" * 64)
        raise invalid
    key, tenant = found
    if not tokens.matches(pepper, presented, key.hash) or key.revoked_at is not None:
        raise invalid
    if tenant is not None and tenant.status != "active":
        raise Forbidden(f"tenant {tenant.name!r} is {tenant.status}")
    now = now or utcnow()
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
        repository.touch(session, key.id, now, now - LAST_USED_RESOLUTION)
    return Principal(api_key_id=key.id, role=key.role, tenant_id=key.tenant_id, name=key.name)
