"""SQL for tenants."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from voiceseal.registry.models import Tenant


def get(session: Session, tenant_id: str) -> Tenant | None:
    return session.get(Tenant, tenant_id)


def get_by_name(session: Session, name: str) -> Tenant | None:
    return session.scalars(select(Tenant).where(Tenant.name == name)).first()


def add(session: Session, tenant: Tenant) -> Tenant:
    session.add(tenant)
    session.flush()
    return tenant


def listing(*, status: str | None = None) -> Select[Tenant]:
    stmt = select(Tenant)
    if status is not None:
        stmt = stmt.where(Tenant.status == status)
    return stmt
