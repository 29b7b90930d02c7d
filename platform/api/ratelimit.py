"""Per-tenant request rate (per minute) and character quota (per UTC day), shared by all processes.

Counters are fixed windows in ``usage_windows``: one row per (tenant, kind, window start),
incremented with a single ``INSERT … ON CONFLICT DO UPDATE … RETURNING amount``. That statement is
atomic on SQLite and PostgreSQL alike, so concurrent requests in any number of processes each see
a distinct running total and none can slip past the limit. A request that would exceed a limit
takes its increment back before raising, so refused requests do not eat into the allowance.

Call :func:`charge` before expensive work, in a short transaction of its own (so the counter row
is not held locked while audio is being made)::

    with transaction(sessionmaker) as s:
        charge(s, tenant, settings, requests=1, chars=len(text))
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from voiceseal.errors import RateLimited
from voiceseal.kit.upsert import insert_on_conflict
from voiceseal.registry.base import utcnow
from voiceseal.registry.models import Tenant, UsageWindow
from voiceseal.settings import Settings

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
#: Windows older than this are deleted when a tenant opens a new one (bounded table growth).
KEEP = timedelta(days=2)


def window_start(now: datetime, length: timedelta) -> datetime:
    if length == MINUTE:
        return now.replace(second=0, microsecond=0)
    if length == DAY:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unsupported window length {length}")


def _add(session: Session, tenant_id: str, kind: str, start: datetime, amount: int) -> int:
    insert = insert_on_conflict(session, UsageWindow).values(
        tenant_id=tenant_id, kind=kind, window_start=start, amount=amount
    )
    upsert = insert.on_conflict_do_update(
        index_elements=["tenant_id", "kind", "window_start"],
        set_={"amount": UsageWindow.amount + insert.excluded.amount},
    ).returning(UsageWindow.amount)
    return int(session.execute(upsert).scalar_one())


def _take_back(session: Session, tenant_id: str, kind: str, start: datetime, amount: int) -> None:
    session.execute(
        update(UsageWindow)
        .where(
            UsageWindow.tenant_id == tenant_id,
            UsageWindow.kind == kind,
            UsageWindow.window_start == start,
        )
        .values(amount=UsageWindow.amount - amount)
    )


def _prune(session: Session, tenant_id: str, now: datetime) -> None:
    session.execute(
        delete(UsageWindow).where(
            UsageWindow.tenant_id == tenant_id, UsageWindow.window_start < now - KEEP
        )
    )


def limits_for(tenant: Tenant, settings: Settings) -> tuple[int, int]:
    """(requests per minute, characters per day) for this tenant: its overrides or the defaults."""
    return (
        tenant.rate_limit_per_minute or settings.rate_limit_per_minute,
        tenant.char_quota_per_day or settings.char_quota_per_day,
    )


def charge(
    session: Session,
    tenant: Tenant,
    settings: Settings,
    *,
    requests: int = 1,
    chars: int = 0,
    now: datetime | None = None,
) -> None:
    """Count ``requests`` and ``chars`` against the tenant's windows or raise :class:`RateLimited`.

    ``RateLimited.retry_after`` is the number of seconds until the exceeded window ends.
    """
    if requests < 0 or chars < 0:
        raise ValueError("requests and chars must be >= 0")
    now = now or utcnow()
    per_minute, per_day = limits_for(tenant, settings)
    if chars > per_day:
        raise RateLimited(
            f"{chars} characters exceed the daily quota of {per_day} on their own",
            retry_after=(window_start(now, DAY) + DAY - now).total_seconds(),
            limit=per_day,
            window="day",
        )
    charged: list[tuple[str, datetime, int]] = []
    for kind, amount, length, limit in (
        ("requests", requests, MINUTE, per_minute),
        ("chars", chars, DAY, per_day),
    ):
        if amount == 0:
            continue
        start = window_start(now, length)
        total = _add(session, tenant.id, kind, start, amount)
        charged.append((kind, start, amount))
        if total == amount and kind == "requests":
            _prune(session, tenant.id, now)  # first request of a new minute: tidy up
        if total > limit:
            for k, s, a in charged:
                _take_back(session, tenant.id, k, s, a)
            what = "requests per minute" if kind == "requests" else "characters per day"
            raise RateLimited(
                f"tenant {tenant.name!r} is over its limit of {limit} {what}",
                retry_after=(start + length - now).total_seconds(),
                limit=limit,
                window="minute" if kind == "requests" else "day",
            )


def usage(session: Session, tenant_id: str, kind: str, now: datetime | None = None) -> int:
    """The amount counted in the tenant's current window of ``kind`` (0 when none)."""
    now = now or utcnow()
    start = window_start(now, MINUTE if kind == "requests" else DAY)
    found = session.scalar(
        select(UsageWindow.amount).where(
            UsageWindow.tenant_id == tenant_id,
            UsageWindow.kind == kind,
            UsageWindow.window_start == start,
        )
    )
    return int(found or 0)
