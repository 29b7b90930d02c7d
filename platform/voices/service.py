"""Registering voices (consent first), protected voices, and preparing voices for engines.

Every check runs before anything is written: a refused registration leaves no row and no blob.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voiceseal.audit import chain
from voiceseal.consents import service as consents
from voiceseal.contracts import ReferenceClip, VoiceAssets
from voiceseal.errors import Conflict, InvalidInput, NotFound, PolicyRefused
from voiceseal.kit import audio as audio_io
from voiceseal.kit import quality
from voiceseal.kit.blobs import store
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.registry.models import ProtectedVoice, Voice, VoiceEmbedding, VoiceSample
from voiceseal.runtime import Runtime
from voiceseal.voices import fingerprints


@dataclass(frozen=True)
class ClipUpload:
    data: bytes
    transcript: str = ""
    language: str = "en"


@dataclass(frozen=True)
class _Checked:
    upload: ClipUpload
    decoded: audio_io.DecodedAudio
    report: quality.QualityReport
    vector: fingerprints.Vector


def _rules_for(runtime: Runtime, engine: str) -> quality.QualityRules:
    caps = runtime.engine(engine).capabilities
    lo, hi = caps.extra.get("reference_seconds", (3.0, 10.0))
    return quality.QualityRules(min_seconds=float(lo), max_seconds=float(hi))


def _check_clips(
    runtime: Runtime, clips: list[ClipUpload], rules: quality.QualityRules, what: str
) -> list[_Checked]:
    if not clips:
        raise InvalidInput(f"{what}: at least one audio clip is required")
    encoder = runtime.speaker_encoder()
    out = []
    for i, clip in enumerate(clips, 1):
        decoded = audio_io.decode(
            clip.data,
            max_seconds=rules.max_seconds + 60,
            max_bytes=runtime.settings.max_upload_bytes,
        )
        report = quality.require(decoded.audio, decoded.sample_rate, rules, f"{what} clip {i}")
        out.append(
            _Checked(clip, decoded, report, encoder.embed(decoded.audio, decoded.sample_rate))
        )
    return out


def register(
    session: Session,
    runtime: Runtime,
    blobs: LocalBlobStore,
    *,
    name: str,
    consent_id: str,
    clips: list[ClipUpload],
    engine: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
    model_files: Mapping[str, bytes] | None = None,
    actor_key_id: str | None,
) -> Voice:
    settings = runtime.settings
    engine_name = engine or settings.default_engine
    eng = runtime.engine(engine_name)
    if not name.strip():
        raise InvalidInput("a voice needs a name")
    consent = consents.get(session, consent_id)
    status = consents.effective_status(consent)
    if status != "active":
        raise PolicyRefused(
            f"consent {consent.id} is {status}; a voice needs an active, verified consent"
        )
    if consent.voice_id is not None:
        raise Conflict(f"consent {consent.id} already backs voice {consent.voice_id}")

    checked = _check_clips(runtime, clips, _rules_for(runtime, engine_name), "reference")
    encoder = runtime.speaker_encoder()
    centroid = fingerprints.centroid([c.vector for c in checked])
    threshold = settings.same_speaker_threshold

    consent_vec = consents.consent_sample_vector(session, consent, encoder.name)
    consent_sim = fingerprints.cosine(consent_vec, centroid)
    if consent_sim < threshold:
        raise PolicyRefused(
            f"the reference clips' speaker does not match the consent recording "
            f"(similarity {consent_sim:.3f} < {threshold:.3f})",
            similarity=round(consent_sim, 4),
        )
    protected = fingerprints.nearest(
        session, centroid, encoder=encoder.name, kind="protected", top_k=1
    )
    if protected and protected[0].similarity >= settings.protected_match_threshold:
        raise PolicyRefused(
            f"this voice matches protected voice {protected[0].protected_voice_id} "
            f"(similarity {protected[0].similarity:.3f}); it may never be cloned",
            protected_voice_id=protected[0].protected_voice_id,
        )
    others = _other_speakers_voices(session, consent.speaker_id)
    if others:
        clash = fingerprints.nearest(
            session,
            centroid,
            encoder=encoder.name,
            kind="centroid",
            top_k=1,
            exclude_voice_ids=tuple(v for v in _voice_ids_of(session, consent.speaker_id)),
        )
        if clash and clash[0].similarity >= settings.protected_match_threshold:
            raise Conflict(
                f"this voice matches voice {clash[0].voice_id}, registered to another speaker "
                f"(similarity {clash[0].similarity:.3f})",
                voice_id=clash[0].voice_id,
            )

    # The engine vets and prepares the voice from temporary copies of its model files; only
    # when it accepts them do the files enter the blob store (a refused pair leaves no blob).
    references = tuple(
        ReferenceClip(
            c.decoded.audio, c.decoded.sample_rate, c.upload.transcript, c.upload.language
        )
        for c in checked
    )
    file_shas = {k: hashlib.sha256(v).hexdigest() for k, v in (model_files or {}).items()}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.data_dir, prefix=".incoming-models-") as tmp:
        staged: dict[str, Path] = {}
        for key, data in (model_files or {}).items():
            staged[key] = Path(tmp) / f"{key}-{file_shas[key][:16]}"
            staged[key].write_bytes(data)
        voice = Voice(
            name=name.strip(),
            speaker_id=consent.speaker_id,
            engine=eng.name,
            languages=sorted({c.upload.language for c in checked}),
            engine_options=dict(engine_options or {}),
            model_files=file_shas,
            created_by_key_id=actor_key_id,
        )
        session.add(voice)
        session.flush()
        handle = eng.prepare_voice(
            VoiceAssets(voice.id, references, staged, dict(engine_options or {}))
        )
    for data in (model_files or {}).values():
        store(session, blobs, data)
    voice.engine_state = handle.persist
    for c in checked:
        sha = store(session, blobs, c.upload.data, "audio/" + c.decoded.container)
        sample = VoiceSample(
            speaker_id=consent.speaker_id,
            voice_id=voice.id,
            kind="reference",
            blob_sha256=sha,
            duration_s=c.decoded.duration_s,
            sample_rate=c.decoded.sample_rate,
            transcript=c.upload.transcript,
            language=c.upload.language,
            snr_db=c.report.snr_db,
            quality=c.report.as_dict(),
        )
        session.add(sample)
        session.flush()
        session.add(
            VoiceEmbedding(
                kind="sample",
                voice_id=voice.id,
                sample_id=sample.id,
                encoder=encoder.name,
                encoder_version=encoder.version,
                dim=len(c.vector),
                vector=fingerprints.to_bytes(c.vector),
            )
        )
    session.add(
        VoiceEmbedding(
            kind="centroid",
            voice_id=voice.id,
            encoder=encoder.name,
            encoder_version=encoder.version,
            dim=len(centroid),
            vector=fingerprints.to_bytes(centroid),
        )
    )
    consent.voice_id = voice.id
    consent.verification = {
        **consent.verification,
        "speaker_match": {
            "similarity": round(consent_sim, 4),
            "threshold": threshold,
            "encoder": encoder.name,
        },
    }
    chain.append(
        session,
        "voice.registered",
        actor_key_id=actor_key_id,
        subject_type="voice",
        subject_id=voice.id,
        data={
            "consent_id": consent.id,
            "engine": eng.name,
            "consent_similarity": round(consent_sim, 4),
        },
    )
    session.flush()
    return voice


def _voice_ids_of(session: Session, speaker_id: str) -> list[str]:
    return list(session.scalars(select(Voice.id).where(Voice.speaker_id == speaker_id)))


def _other_speakers_voices(session: Session, speaker_id: str) -> bool:
    return (
        session.scalar(select(Voice.id).where(Voice.speaker_id != speaker_id).limit(1)) is not None
    )


def add_protected(
    session: Session,
    runtime: Runtime,
    blobs: LocalBlobStore,
    *,
    name: str,
    reason: str,
    clips: list[ClipUpload],
    actor_key_id: str | None,
) -> ProtectedVoice:
    rules = quality.QualityRules(
        min_seconds=2.0,
        max_seconds=600.0,
        min_snr_db=5.0,
        max_silence_ratio=0.9,
        min_speech_ratio=0.1,
    )
    checked = _check_clips(runtime, clips, rules, "protected voice")
    encoder = runtime.speaker_encoder()
    pv = ProtectedVoice(
        name=name.strip() or "unnamed", reason=reason, created_by_key_id=actor_key_id
    )
    session.add(pv)
    session.flush()
    vec = fingerprints.centroid([c.vector for c in checked])
    session.add(
        VoiceEmbedding(
            kind="protected",
            protected_voice_id=pv.id,
            encoder=encoder.name,
            encoder_version=encoder.version,
            dim=len(vec),
            vector=fingerprints.to_bytes(vec),
        )
    )
    chain.append(
        session,
        "protected_voice.added",
        actor_key_id=actor_key_id,
        subject_type="protected_voice",
        subject_id=pv.id,
        data={"name": pv.name},
    )
    session.flush()
    return pv


def get(session: Session, voice_id: str) -> Voice:
    voice = session.get(Voice, voice_id)
    if voice is None:
        raise NotFound(f"voice {voice_id} does not exist")
    return voice


def centroid_of(session: Session, voice_id: str, encoder: str) -> fingerprints.Vector | None:
    emb = session.scalar(
        select(VoiceEmbedding).where(
            VoiceEmbedding.voice_id == voice_id,
            VoiceEmbedding.kind == "centroid",
            VoiceEmbedding.encoder == encoder,
        )
    )
    return fingerprints.from_bytes(emb.vector) if emb is not None else None


def load_assets(session: Session, blobs: LocalBlobStore, voice: Voice) -> VoiceAssets:
    samples = session.scalars(
        select(VoiceSample)
        .where(VoiceSample.voice_id == voice.id, VoiceSample.kind == "reference")
        .order_by(VoiceSample.created_at, VoiceSample.id)
    ).all()
    refs = []
    for s in samples:
        dec = audio_io.decode(blobs.get(s.blob_sha256), max_seconds=3600)
        refs.append(
            ReferenceClip(dec.audio, dec.sample_rate, s.transcript, s.language, s.blob_sha256)
        )
    files = {k: blobs.path(sha) for k, sha in (voice.model_files or {}).items()}
    return VoiceAssets(
        voice.id,
        tuple(refs),
        files,
        dict(voice.engine_options or {}),
        dict(voice.engine_state or {}),
    )
