"""The append-only, hash-chained audit log.

Each event's hash is SHA-256 over the previous hash and a canonical JSON of the event's content.
Appends go through the single ``audit_head`` row: ``UPDATE … RETURNING`` takes the row lock on
PostgreSQL and the write lock on SQLite before the previous hash is read, so concurrent writers
(any number of processes) can never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from voiceseal.registry.base import utcnow
from voiceseal.registry.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _canonical(
    seq: int,
    created_at: datetime,
    action: str,
    actor_key_id: str | None,
    tenant_id: str | None,
    subject_type: str,
    subject_id: str,
    data: dict[str, Any],
) -> bytes:
    body = {
        "seq": seq,
        # Microseconds are kept; SQLite and PostgreSQL both round-trip them.
        "created_at": created_at.isoformat(timespec="microseconds"),
        "action": action,
        "actor_key_id": actor_key_id,
        "tenant_id": tenant_id,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "data": data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    payload = _canonical(
        event.seq,
        event.created_at,
        event.action,
        event.actor_key_id,
        event.tenant_id,
        event.subject_type,
        event.subject_id,
        event.data or {},
    )
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


def append(
    session: Session,
    action: str,
    *,
    actor_key_id: str | None = None,
    tenant_id: str | None = None,
    subject_type: str = "",
    subject_id: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction (committed with whatever it records)."""
    row = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.last_hash)
    ).one()
    seq, prev = int(row[0]), str(row[1])
    ev = AuditEvent(
        seq=seq,
        created_at=utcnow(),
        action=action,
        actor_key_id=actor_key_id,
        tenant_id=tenant_id,
        subject_type=subject_type,
        subject_id=subject_id,
        data=data or {},
        prev_hash=prev,
        hash="",
    )
    ev.hash = event_hash(prev, ev)
    session.add(ev)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=ev.hash))
    session.flush()
    return ev


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify(session: Session, *, batch: int = 5000) -> ChainReport:
    """Walk the chain in order; name the first row that was edited, deleted or reordered."""
    prev = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq > last_seq)
            .order_by(AuditEvent.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        for ev in rows:
            if ev.seq != expected_seq:
                return ChainReport(
                    False,
                    checked,
                    expected_seq,
                    f"event {expected_seq} is missing (next present is {ev.seq})",
                )
            if ev.prev_hash != prev:
                return ChainReport(
                    False,
                    checked,
                    ev.seq,
                    f"event {ev.seq} does not follow event {ev.seq - 1} (deleted or reordered)",
                )
            if event_hash(prev, ev) != ev.hash:
                return ChainReport(
                    False, checked, ev.seq, f"event {ev.seq} was edited after it was written"
                )
            prev = ev.hash
            expected_seq += 1
            checked += 1
            last_seq = ev.seq
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != checked or head.last_hash != prev):
        return ChainReport(
            False,
            checked,
            checked + 1 if head.seq > checked else checked,
            f"the chain ends at event {checked} but its head says {head.seq}: "
            "events were removed from the end",
        )
    return ChainReport(True, checked)
