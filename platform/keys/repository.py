"""SQL for API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from voiceseal.registry.models import ApiKey, Tenant


def get(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def get_with_tenant(session: Session, prefix: str) -> tuple[ApiKey, Tenant | None] | None:
    row = session.execute(
        select(ApiKey, Tenant)
        .outerjoin(Tenant, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.prefix == prefix)
    ).first()
    return None if row is None else (row[0], row[1])


def add(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def listing(*, tenant_id: str | None, include_revoked: bool) -> Select[ApiKey]:
    stmt = select(ApiKey)
    if tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == tenant_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return stmt


def count_active_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
        )
        or 0
    )


def touch(session: Session, key_id: str, now: datetime, stale_before: datetime) -> None:
    # The WHERE makes concurrent touches of the same key collapse into one write per interval.
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < stale_before))
        .values(last_used_at=now)
    )
