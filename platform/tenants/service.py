"""Tenant lifecycle. Every change appends an audit event in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from voiceseal.audit import chain
from voiceseal.errors import Conflict, NotFound
from voiceseal.keys.principal import Principal
from voiceseal.registry.models import Tenant
from voiceseal.tenants import repository
from voiceseal.tenants.schemas import TenantCreate, TenantUpdate


def create(session: Session, data: TenantCreate, *, actor_key_id: str | None) -> Tenant:
    if repository.get_by_name(session, data.name) is not None:
        raise Conflict(f"a tenant named {data.name!r} already exists")
    tenant = Tenant(
        name=data.name,
        status="active",
        rate_limit_per_minute=data.rate_limit_per_minute,
        char_quota_per_day=data.char_quota_per_day,
    )
    try:
        repository.add(session, tenant)
    except IntegrityError:
        # Lost a race with a concurrent create of the same name; the request's transaction is
        # rolled back as the error propagates (no savepoint: pysqlite's are not reliable).
        raise Conflict(f"a tenant named {data.name!r} already exists") from None
    chain.append(
        session,
        "tenant.created",
        actor_key_id=actor_key_id,
        tenant_id=tenant.id,
        subject_type="tenant",
        subject_id=tenant.id,
        data={
            "name": tenant.name,
            "rate_limit_per_minute": tenant.rate_limit_per_minute,
            "char_quota_per_day": tenant.char_quota_per_day,
        },
    )
    return tenant


def get(session: Session, tenant_id: str, *, viewer: Principal | None = None) -> Tenant:
    """A tenant by id; a tenant key sees only its own (others read as not found, not forbidden)."""
    tenant = repository.get(session, tenant_id)
    if tenant is None or (
        viewer is not None and viewer.role == "tenant" and viewer.tenant_id != tenant_id
    ):
        raise NotFound(f"no tenant {tenant_id!r}")
    return tenant


def resolve(session: Session, name_or_id: str) -> Tenant:
    """A tenant by id or, failing that, by exact name (for the CLI)."""
    tenant = repository.get(session, name_or_id) or repository.get_by_name(session, name_or_id)
    if tenant is None:
        raise NotFound(f"no tenant with id or name {name_or_id!r}")
    return tenant


def update(
    session: Session, tenant_id: str, data: TenantUpdate, *, actor_key_id: str | None
) -> Tenant:
    tenant = get(session, tenant_id)
    changes: dict[str, object] = {}
    for field in sorted(data.model_fields_set):
        value = getattr(data, field)
        if field == "status" and value is None:
            continue  # status cannot be "unset"
        if getattr(tenant, field) != value:
            changes[field] = value
            setattr(tenant, field, value)
    if changes:
        session.flush()
        chain.append(
            session,
            "tenant.updated",
            actor_key_id=actor_key_id,
            tenant_id=tenant.id,
            subject_type="tenant",
            subject_id=tenant.id,
            data=changes,
        )
    return tenant
