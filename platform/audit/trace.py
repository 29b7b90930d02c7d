"""Tracing a clip found anywhere: watermark → generation → voice → consent → tenant and key.

When no watermark is found, the answer still helps: the nearest registered voices by speaker
similarity and near-duplicate generations by content fingerprint, each with its score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voiceseal.audit import chain
from voiceseal.generations import fingerprint as content_fp
from voiceseal.kit import audio as audio_io
from voiceseal.registry.models import (
    ApiKey,
    Consent,
    ConsentEvent,
    FingerprintHash,
    Generation,
    Speaker,
    Tenant,
    Voice,
)
from voiceseal.runtime import Runtime
from voiceseal.voices import fingerprints

#: Hashes agreeing on one offset needed to call a near-duplicate (chance agreement is < 1e-3 at 8).
MIN_FP_VOTES = 8


@dataclass
class TraceResult:
    detected: bool
    watermark: dict[str, Any] | None
    generation: dict[str, Any] | None
    voice: dict[str, Any] | None
    consent: dict[str, Any] | None
    tenant: dict[str, Any] | None
    api_key: dict[str, Any] | None
    nearest_voices: list[dict[str, Any]]
    near_duplicates: list[dict[str, Any]]
    clip: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _iso(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


def trace_generation(session: Session, gen: Generation) -> dict[str, Any]:
    # Two round trips whatever the registry's size: the related rows in one outer-joined query,
    # then the consent's events (a trace is the hot path of an audit at scale).
    row = session.execute(
        select(Voice, Speaker, Consent, Tenant, ApiKey)
        .select_from(Generation)
        .outerjoin(Voice, Voice.id == Generation.voice_id)
        .outerjoin(Speaker, Speaker.id == Voice.speaker_id)
        .outerjoin(Consent, Consent.id == Generation.consent_id)
        .outerjoin(Tenant, Tenant.id == Generation.tenant_id)
        .outerjoin(ApiKey, ApiKey.id == Generation.api_key_id)
        .where(Generation.id == gen.id)
    ).one()
    voice, speaker, consent, tenant, key = row
    events = []
    if consent is not None:
        events = [
            {"event": e.event, "at": _iso(e.created_at), "reason": e.reason}
            for e in session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.consent_id == consent.id)
                .order_by(ConsentEvent.created_at, ConsentEvent.id)
            )
        ]
    return {
        "generation": {
            "id": gen.id,
            "created_at": _iso(gen.created_at),
            "status": gen.status,
            "engine": gen.engine,
            "engine_version": gen.engine_version,
            "text_sha256": gen.text_sha256,
            "audio_sha256": gen.audio_sha256,
            "duration_s": gen.duration_s,
            "purpose": gen.purpose,
            "watermark_payload": f"{gen.watermark_payload:08x}"
            if gen.watermark_payload is not None
            else None,
            "similarity_to_voice": gen.similarity_to_voice,
        },
        "voice": {
            "id": voice.id,
            "name": voice.name,
            "engine": voice.engine,
            "speaker": {"id": speaker.id, "name": speaker.name} if speaker else None,
        }
        if voice
        else None,
        "consent": {
            "id": consent.id,
            "version": gen.consent_version,
            "status": consent.status,
            "scope_tenants": consent.scope_tenants,
            "scope_purposes": consent.scope_purposes,
            "expires_at": _iso(consent.expires_at),
            "events": events,
        }
        if consent
        else None,
        "tenant": {"id": tenant.id, "name": tenant.name} if tenant else None,
        "api_key": {"id": key.id, "name": key.name, "prefix": key.prefix, "role": key.role}
        if key
        else None,
    }


def detect(
    session: Session, runtime: Runtime, data: bytes, *, actor_key_id: str | None, top_k: int = 10
) -> TraceResult:
    settings = runtime.settings
    decoded = audio_io.decode(
        data, max_seconds=settings.max_audit_seconds, max_bytes=settings.max_upload_bytes
    )
    clip = {
        "duration_s": round(decoded.duration_s, 3),
        "sample_rate": decoded.original_sample_rate,
        "channels": decoded.original_channels,
        "container": decoded.container,
    }
    wm = runtime.watermarker()
    det = wm.detect(decoded.audio, decoded.sample_rate)
    found: dict[str, Any] = {}
    watermark = None
    if det is not None:
        payload = int.from_bytes(det.payload, "big")
        watermark = {
            "scheme": wm.name,
            "payload": det.payload.hex(),
            "confidence": det.confidence,
            "offset_seconds": det.offset_seconds,
        }
        gen = session.scalar(select(Generation).where(Generation.watermark_payload == payload))
        if gen is not None:
            found = trace_generation(session, gen)
        else:
            watermark["resolved"] = False
    nearest: list[dict[str, Any]] = []
    dupes: list[dict[str, Any]] = []
    if not found:
        encoder = runtime.speaker_encoder()
        vec = encoder.embed(decoded.audio, decoded.sample_rate)
        for m in fingerprints.nearest(
            session, vec, encoder=encoder.name, kind="centroid", top_k=top_k
        ):
            v = session.get(Voice, m.voice_id) if m.voice_id else None
            nearest.append(
                {
                    "voice_id": m.voice_id,
                    "name": v.name if v else None,
                    "similarity": round(m.similarity, 4),
                }
            )
        for m in fingerprints.nearest(
            session, vec, encoder=encoder.name, kind="protected", top_k=3
        ):
            nearest.append(
                {"protected_voice_id": m.protected_voice_id, "similarity": round(m.similarity, 4)}
            )
        query = content_fp.landmarks(decoded.audio, decoded.sample_rate)
        hashes = sorted({h for h, _ in query})
        rows: list[tuple[str, int, int]] = []
        for i in range(0, len(hashes), 500):
            rows.extend(
                session.execute(
                    select(
                        FingerprintHash.generation_id, FingerprintHash.hash, FingerprintHash.offset
                    ).where(FingerprintHash.hash.in_(hashes[i : i + 500]))
                ).tuples()
            )
        for gen_id, votes, offset in content_fp.best_offsets(query, rows)[:top_k]:
            if votes < MIN_FP_VOTES:
                break
            dupes.append(
                {
                    "generation_id": gen_id,
                    "votes": votes,
                    "query_hashes": len(query),
                    "offset_seconds": round(offset * content_fp.HOP / content_fp.SR, 3),
                }
            )
    chain.append(
        session,
        "audit.detect",
        actor_key_id=actor_key_id,
        subject_type="generation",
        subject_id=(found.get("generation") or {}).get("id", ""),
        data={"detected": det is not None, "resolved": bool(found), "near_duplicates": len(dupes)},
    )
    return TraceResult(
        det is not None,
        watermark,
        found.get("generation"),
        found.get("voice"),
        found.get("consent"),
        found.get("tenant"),
        found.get("api_key"),
        nearest,
        dupes,
        clip,
    )
