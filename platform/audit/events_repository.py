"""SQL for reading the audit log (appending is :func:`voiceseal.audit.chain.append`)."""

from __future__ import annotations

from sqlalchemy import Select, select

from voiceseal.registry.models import AuditEvent


def listing(
    *,
    action: str | None = None,
    tenant_id: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    actor_key_id: str | None = None,
) -> Select[AuditEvent]:
    stmt = select(AuditEvent)
    if action is not None:
        # "consent." selects a whole family of actions; anything else must match exactly.
        stmt = stmt.where(
            AuditEvent.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else AuditEvent.action == action
        )
    if tenant_id is not None:
        stmt = stmt.where(AuditEvent.tenant_id == tenant_id)
    if subject_type is not None:
        stmt = stmt.where(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        stmt = stmt.where(AuditEvent.subject_id == subject_id)
    if actor_key_id is not None:
        stmt = stmt.where(AuditEvent.actor_key_id == actor_key_id)
    return stmt
