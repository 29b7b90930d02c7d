"""Consent lifecycle: issue a statement with a nonce, verify the spoken recording, revoke, expire.

Services never commit; the caller's transaction does. Refused verifications are *returned* (not
raised) so that the caller can commit the record of the refusal before answering with an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from voiceseal import notifications
from voiceseal.audit import chain
from voiceseal.consents.statement import (
    StatementMatch,
    build_statement,
    match,
    new_nonce,
    nonce_hash,
)
from voiceseal.errors import Conflict, InvalidAudio, InvalidInput, NotFound, VoiceSealError
from voiceseal.kit import audio as audio_io
from voiceseal.kit import quality
from voiceseal.kit.blobs import store
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.registry.base import utcnow
from voiceseal.registry.models import (
    Consent,
    ConsentEvent,
    Speaker,
    Tenant,
    VoiceEmbedding,
    VoiceSample,
)
from voiceseal.runtime import Runtime
from voiceseal.voices import fingerprints

NONCE_TTL = timedelta(minutes=30)
MIN_STATEMENT_RATIO = 0.8
MAX_ATTEMPTS = 3


@dataclass
class IssuedConsent:
    consent: Consent
    speaker: Speaker
    nonce: str


@dataclass
class VerificationOutcome:
    consent: Consent
    ok: bool
    reason: str = ""
    code: str = ""
    checks: dict[str, Any] = field(default_factory=dict)


def _resolve_tenants(session: Session, refs: list[str]) -> list[Tenant]:
    if not refs:
        raise InvalidInput("a consent must name at least one tenant in its scope")
    found = session.scalars(
        select(Tenant).where(or_(Tenant.id.in_(refs), Tenant.name.in_(refs)))
    ).all()
    known = {t.id for t in found} | {t.name for t in found}
    missing = [r for r in refs if r not in known]
    if missing:
        raise InvalidInput(f"scope names unknown tenant(s): {', '.join(missing)}")
    return list(found)


def issue(
    session: Session,
    *,
    speaker_name: str | None,
    speaker_id: str | None,
    tenants: list[str],
    purposes: list[str],
    languages: list[str],
    expires_at: datetime | None,
    actor_key_id: str | None,
    now: datetime | None = None,
) -> IssuedConsent:
    now = now or utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expires_at is in the past")
    if not purposes:
        raise InvalidInput("a consent must name at least one purpose")
    scope = _resolve_tenants(session, tenants)
    if speaker_id:
        speaker = session.get(Speaker, speaker_id)
        if speaker is None:
            raise NotFound(f"speaker {speaker_id} does not exist")
    else:
        if not speaker_name or not speaker_name.strip():
            raise InvalidInput("speaker_name or speaker_id is required")
        speaker = Speaker(name=speaker_name.strip())
        session.add(speaker)
        session.flush()
    version = (
        session.scalar(select(func.max(Consent.version)).where(Consent.speaker_id == speaker.id))
        or 0
    ) + 1
    nonce = new_nonce()
    statement = build_statement(speaker.name, [t.name for t in scope], purposes, nonce)
    consent = Consent(
        speaker_id=speaker.id,
        version=version,
        statement=statement,
        nonce_hash=nonce_hash(nonce),
        nonce_expires_at=now + NONCE_TTL,
        status="pending",
        scope_tenants=sorted(t.id for t in scope),
        scope_purposes=sorted(set(purposes)),
        scope_languages=sorted(set(languages or ["en"])),
        expires_at=expires_at,
        verification={"attempts": []},
        created_by_key_id=actor_key_id,
    )
    session.add(consent)
    session.flush()
    _event(session, consent, "issued", actor_key_id, data={"version": version})
    return IssuedConsent(consent, speaker, nonce)


def _event(
    session: Session,
    consent: Consent,
    event: str,
    actor_key_id: str | None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        ConsentEvent(
            consent_id=consent.id,
            event=event,
            reason=reason,
            actor_key_id=actor_key_id,
            data=data or {},
        )
    )
    chain.append(
        session,
        f"consent.{event}",
        actor_key_id=actor_key_id,
        subject_type="consent",
        subject_id=consent.id,
        data={"reason": reason, **(data or {})},
    )
    notifications.queue(
        session,
        "consent_changed",
        {
            "consent_id": consent.id,
            "speaker_id": consent.speaker_id,
            "event": event,
            "status": consent.status,
            "version": consent.version,
            "reason": reason,
        },
    )


def get(session: Session, consent_id: str) -> Consent:
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"consent {consent_id} does not exist")
    return consent


def verify_recording(
    session: Session,
    runtime: Runtime,
    blobs: LocalBlobStore,
    consent_id: str,
    data: bytes,
    *,
    actor_key_id: str | None,
    nonce: str | None = None,
    now: datetime | None = None,
) -> VerificationOutcome:
    """Check a spoken consent recording. ``nonce`` is never needed: it is matched via its hash."""
    now = now or utcnow()
    consent = get(session, consent_id)
    if consent.status != "pending":
        raise Conflict(
            f"consent {consent.id} is {consent.status}: its nonce was already used or "
            "withdrawn; issue a new statement"
        )
    if consent.nonce_expires_at <= now:
        return _refuse(
            session,
            consent,
            "nonce_expired",
            f"the statement's nonce expired at {consent.nonce_expires_at.isoformat()}; "
            "issue a new statement",
            {},
            actor_key_id,
            final=True,
        )
    settings = runtime.settings
    decoded = audio_io.decode(
        data,
        max_seconds=quality.CONSENT_RULES.max_seconds + 30,
        max_bytes=settings.max_upload_bytes,
    )
    report = quality.measure(decoded.audio, decoded.sample_rate, quality.CONSENT_RULES)
    checks: dict[str, Any] = {"quality": report.as_dict()}
    if not report.ok:
        return _refuse(
            session,
            consent,
            "quality",
            "consent recording refused: " + "; ".join(report.failures),
            checks,
            actor_key_id,
        )
    digest = hashlib.sha256(data).hexdigest()
    reused = session.scalar(
        select(VoiceSample.id).where(
            VoiceSample.blob_sha256 == digest, VoiceSample.kind == "consent"
        )
    )
    if reused:
        return _refuse(
            session,
            consent,
            "replay",
            "this exact recording was already used for another consent (replay)",
            checks,
            actor_key_id,
        )
    # Our own synthetic speech must never consent on a person's behalf.
    detection = runtime.watermarker().detect(decoded.audio, decoded.sample_rate)
    checks["watermark"] = {
        "detected": detection is not None,
        "confidence": detection.confidence if detection else None,
    }
    if detection is not None:
        return _refuse(
            session,
            consent,
            "synthetic",
            "the recording carries a VoiceSeal watermark: it is synthetic speech, not the speaker",
            checks,
            actor_key_id,
        )
    language = (consent.scope_languages or ["en"])[0]
    transcriber = runtime.transcriber()
    m, passes = _best_reading(
        transcriber, decoded.audio, decoded.sample_rate, language, consent.statement
    )
    checks["transcript"] = {**m.as_dict(), "transcriber": transcriber.name, "passes": passes}
    if not m.nonce_found:
        return _refuse(
            session,
            consent,
            "nonce_mismatch",
            "the recording does not contain this "
            "statement's confirmation number (wrong nonce, or an old recording)",
            checks,
            actor_key_id,
        )
    if m.statement_ratio < MIN_STATEMENT_RATIO:
        return _refuse(
            session,
            consent,
            "statement_mismatch",
            f"only {m.statement_ratio:.0%} of the statement was recognised "
            f"(at least {MIN_STATEMENT_RATIO:.0%} needed)",
            checks,
            actor_key_id,
        )
    encoder = runtime.speaker_encoder()
    vector = encoder.embed(decoded.audio, decoded.sample_rate)
    sha = store(session, blobs, data, "audio/" + decoded.container)
    sample = VoiceSample(
        speaker_id=consent.speaker_id,
        kind="consent",
        blob_sha256=sha,
        duration_s=decoded.duration_s,
        sample_rate=decoded.sample_rate,
        transcript=m.transcript,
        language=language,
        snr_db=report.snr_db,
        quality=report.as_dict(),
    )
    session.add(sample)
    session.flush()
    session.add(
        VoiceEmbedding(
            kind="sample",
            sample_id=sample.id,
            encoder=encoder.name,
            encoder_version=encoder.version,
            dim=len(vector),
            vector=fingerprints.to_bytes(vector),
        )
    )
    consent.status = "active"
    consent.nonce_used_at = now
    consent.statement_sample_id = sample.id
    consent.verification = {
        **consent.verification,
        "accepted": checks,
        "accepted_at": now.isoformat(),
    }
    _event(
        session,
        consent,
        "verified",
        actor_key_id,
        data={"statement_ratio": round(m.statement_ratio, 4)},
    )
    return VerificationOutcome(consent, True, checks=checks)


def _phrases(audio: Any, sr: int, shortest_s: float = 2.0, longest_s: float = 4.0) -> list[Any]:
    """The clip cut into 2–4 s pieces at the quietest 20 ms frame of each window (a reader's pause
    where there is one), for a second ASR pass on short pieces."""
    import numpy as np

    hop = int(0.02 * sr)
    n = len(audio) // hop
    if n == 0:
        return [audio]
    energy = np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1)
    lo, hi = int(shortest_s / 0.02), int(longest_s / 0.02)
    pieces, start = [], 0
    while n - start > hi:
        cut = start + lo + int(np.argmin(energy[start + lo : start + hi]))
        pieces.append(audio[start * hop : cut * hop])
        start = cut
    pieces.append(audio[start * hop :])
    return [p for p in pieces if len(p) > hop]


def _best_reading(
    transcriber: Any, audio: Any, sr: int, language: str, statement: str
) -> tuple[StatementMatch, list[str]]:
    """Match the statement in a whole-clip transcript, then, if that misses, phrase by phrase.

    Small recognisers drop or merge words on long clips; transcribing each phrase separately
    (cut at the reader's pauses) recovers them. Both transcripts are kept with the consent.
    """
    nonce = _nonce_from_statement(statement)
    import numpy as np

    # Half a second of trailing silence: small recognisers drop a last sentence that runs to the
    # very end of the clip.
    padded = np.concatenate([audio, np.zeros(int(0.5 * sr), dtype=audio.dtype)])
    whole = transcriber.transcribe(padded, sr, language).text
    best = match(statement, nonce, whole)
    passes = [whole]
    if not (best.nonce_found and best.statement_ratio >= MIN_STATEMENT_RATIO):
        heard = []
        for piece in _phrases(audio, sr):
            try:
                heard.append(transcriber.transcribe(piece, sr, language).text)
            except InvalidAudio:
                continue  # a silent pause between phrases says nothing
        joined = " ".join(heard)
        passes.append(joined)
        second = match(statement, nonce, joined)
        if (second.nonce_found, second.statement_ratio) > (best.nonce_found, best.statement_ratio):
            best = second
    return best, passes


def _nonce_from_statement(statement: str) -> str:
    # The statement is the only place the nonce lives; it ends "... confirmation number is 4 7 …."
    return statement.rsplit("confirmation number is", 1)[-1].strip().rstrip(".")


def _refuse(
    session: Session,
    consent: Consent,
    code: str,
    reason: str,
    checks: dict[str, Any],
    actor_key_id: str | None,
    *,
    final: bool = False,
) -> VerificationOutcome:
    attempts = [
        *consent.verification.get("attempts", []),
        {"at": utcnow().isoformat(), "code": code, "reason": reason, "checks": checks},
    ]
    consent.verification = {**consent.verification, "attempts": attempts}
    if final or len(attempts) >= MAX_ATTEMPTS:
        consent.status = "refused"
    _event(session, consent, "refused", actor_key_id, reason=reason, data={"code": code})
    return VerificationOutcome(consent, False, reason, code, checks)


def revoke(session: Session, consent_id: str, *, reason: str, actor_key_id: str | None) -> Consent:
    consent = get(session, consent_id)
    if consent.status == "revoked":
        raise Conflict(f"consent {consent.id} is already revoked")
    consent.status = "revoked"
    _event(session, consent, "revoked", actor_key_id, reason=reason or "revoked by admin")
    return consent


def effective_status(consent: Consent, now: datetime | None = None) -> str:
    """The status as of now: an active consent past its expiry is expired, with no job needed."""
    now = now or utcnow()
    if consent.status == "active" and consent.expires_at is not None and consent.expires_at <= now:
        return "expired"
    return consent.status


def history(session: Session, speaker_id: str) -> list[tuple[Consent, list[ConsentEvent]]]:
    consents = session.scalars(
        select(Consent).where(Consent.speaker_id == speaker_id).order_by(Consent.version)
    ).all()
    out = []
    for c in consents:
        events = session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.consent_id == c.id)
            .order_by(ConsentEvent.created_at, ConsentEvent.id)
        ).all()
        out.append((c, list(events)))
    return out


def consent_sample_vector(session: Session, consent: Consent, encoder: str) -> fingerprints.Vector:
    if consent.statement_sample_id is None:
        raise VoiceSealError(f"consent {consent.id} has no verified recording")
    emb = session.scalar(
        select(VoiceEmbedding).where(
            VoiceEmbedding.sample_id == consent.statement_sample_id,
            VoiceEmbedding.encoder == encoder,
        )
    )
    if emb is None:
        raise VoiceSealError(f"consent {consent.id} has no {encoder} embedding")
    return fingerprints.from_bytes(emb.vector)
