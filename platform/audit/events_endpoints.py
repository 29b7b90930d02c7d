"""Audit-log routes for auditors (and admins): list events, verify the hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from voiceseal.api.deps import AuditorDep, SessionDep
from voiceseal.api.pagination import Page, PageParamsDep, paginate
from voiceseal.audit import chain, events_repository
from voiceseal.registry.models import AuditEvent

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_Filter = Annotated[str | None, Query(max_length=64)]


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    created_at: datetime
    action: str
    actor_key_id: str | None
    tenant_id: str | None
    subject_type: str
    subject_id: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class ChainReportPublic(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str


@router.get("/events", response_model=Page[AuditEventPublic])
def list_events(
    *,
    session: SessionDep,
    page: PageParamsDep,
    _: AuditorDep,
    action: Annotated[
        str | None, Query(max_length=64, description="Exact action, or a family: `consent.`")
    ] = None,
    tenant_id: _Filter = None,
    subject_type: _Filter = None,
    subject_id: _Filter = None,
    actor_key_id: _Filter = None,
) -> Page[AuditEventPublic]:
    """Audit events, newest first, optionally filtered."""
    stmt = events_repository.listing(
        action=action,
        tenant_id=tenant_id,
        subject_type=subject_type,
        subject_id=subject_id,
        actor_key_id=actor_key_id,
    )
    found = paginate(session, stmt, keys=(AuditEvent.seq,), params=page)
    return Page[AuditEventPublic].build(found, AuditEventPublic.model_validate)


@router.post("/verify", response_model=ChainReportPublic)
def verify_chain(*, session: SessionDep, _: AuditorDep) -> ChainReportPublic:
    """Walk the whole chain; ``ok`` is false with the first edited, removed or reordered event."""
    report = chain.verify(session)
    return ChainReportPublic(
        ok=report.ok,
        checked=report.checked,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
    )
