"""The synthesis pipeline (DESIGN.md §3): every request, streamed or not, takes the same nine steps.

1 authorise → 2 policy → 3 text → 4 synthesise → 5 post-process → 6 watermark → 7 verify →
8 record → 9 deliver.

Transactions are short and explicit: steps 1–2 read and charge in one transaction (so revocation
takes effect at the next request with no cache in between); synthesis runs outside any transaction;
step 8 writes the generation row and its audit event together. A refusal at any step is recorded in
its own transaction, then raised: nothing half-written stays behind.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.audit import chain
from voiceseal.consents import service as consents
from voiceseal.contracts import Audio, SynthesisOptions, VoiceHandle
from voiceseal.errors import (
    Cancelled,
    InvalidInput,
    NotFound,
    PolicyRefused,
    VoiceSealError,
    WatermarkError,
)
from voiceseal.generations import fingerprint as content_fp
from voiceseal.kit import audio as audio_io
from voiceseal.kit import cancel
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.kit.db import transaction
from voiceseal.policy import PolicyContext, Refusal, SynthesisRequest
from voiceseal.registry.models import Consent, FingerprintHash, Generation, Tenant, Voice
from voiceseal.runtime import Runtime
from voiceseal.text import TextPlan, prepare_text
from voiceseal.voices import fingerprints
from voiceseal.voices import service as voices

log = logging.getLogger(__name__)

SENTENCE_GAP_S = 0.25
#: Level of the room tone that pads outputs shorter than the watermark's minimum (inaudible).
ROOM_TONE_DBFS = -60.0
STREAM_FORMATS = ("audio", "sse")


@dataclass(frozen=True)
class SpeechRequest:
    tenant_id: str
    api_key_id: str | None
    voice: str
    text: str
    response_format: str = "wav"
    speed: float = 1.0
    language: str | None = None
    purpose: str = "tts"
    seed: int = 0
    stream: bool = False
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What steps 1–3 decided; everything later needs only this."""

    request: SpeechRequest
    voice_id: str
    voice_name: str
    engine: str
    consent_id: str
    consent_version: int
    language: str
    text: TextPlan
    handle_key: tuple[str, str]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    generation_id: str
    audio: bytes
    media_type: str
    sample_rate: int
    duration_s: float
    watermark_payload: int


def room_tone(n: int, seed: int = 0) -> Audio:
    """Quiet, deterministic low-passed noise with a short fade-in, ``ROOM_TONE_DBFS`` RMS."""
    if n <= 0:
        return np.zeros(0, np.float32)
    from scipy.signal import lfilter

    # One-pole low-pass of white noise: roughly the spectrum of a quiet room.
    tone = np.asarray(lfilter([0.1], [1.0, -0.9], np.random.default_rng(seed).standard_normal(n)))
    tone *= 10 ** (ROOM_TONE_DBFS / 20) / max(float(np.sqrt(np.mean(tone**2))), 1e-12)
    fade = min(n, 480)
    tone[:fade] *= np.linspace(0.0, 1.0, fade)
    return tone.astype(np.float32)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def verify_seconds(extra: Mapping[str, Any]) -> float:
    """How long an output must be for the watermarker's check of it to pass, from its
    capabilities: its "verify_seconds" (patchwork reads 1 s clips, 0.995 of them, and asks for
    2.5 s), never less than its "min_detect_seconds" (it reads nothing shorter); without the
    former, one second over the minimum (measured: outputs with ~0.9 s of speech then verify
    every time). A value that is not a finite number of seconds >= 0 counts as absent."""
    minimum = _seconds(extra.get("min_detect_seconds")) or 0.0
    wanted = _seconds(extra.get("verify_seconds"))
    if wanted is None:
        return minimum + 1.0 if minimum else 0.0
    return max(wanted, minimum)


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class Orchestrator:
    def __init__(
        self,
        runtime: Runtime,
        sessions: sessionmaker[Session],
        blobs: LocalBlobStore,
        charge: Callable[[Session, Tenant, int], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.sessions = sessions
        self.blobs = blobs
        self.handles = runtime.handles
        #: Rate-limit / quota hook called inside the policy transaction (the API passes its own).
        self.charge = charge

    # -- steps 1-3 -----------------------------------------------------------------------------

    def plan(self, req: SpeechRequest) -> Plan:
        settings = self.runtime.settings
        t0 = time.perf_counter()
        if req.response_format not in audio_io.MEDIA_TYPES:
            raise InvalidInput(f"response_format must be one of {', '.join(audio_io.MEDIA_TYPES)}")
        if not (0.25 <= req.speed <= 4.0):
            raise InvalidInput("speed must be between 0.25 and 4.0")
        if not req.text or not req.text.strip():
            raise InvalidInput("input text is empty")
        if len(req.text) > settings.max_text_chars:
            raise InvalidInput(
                f"input is {len(req.text)} characters; the limit is {settings.max_text_chars}"
            )
        refusal: tuple[Refusal, dict[str, Any]] | None = None
        with transaction(self.sessions) as session:
            tenant = session.get(Tenant, req.tenant_id)
            if tenant is None or tenant.status != "active":
                raise PolicyRefused(f"tenant {req.tenant_id} is not active")
            if self.charge is not None:
                self.charge(session, tenant, len(req.text))
            voice = session.get(Voice, req.voice) or session.scalar(
                select(Voice)
                .where(Voice.name == req.voice)
                .order_by(Voice.created_at.desc())
                .limit(1)
            )
            if voice is None:
                raise NotFound(f"voice {req.voice!r} does not exist")
            consent = session.scalar(
                select(Consent)
                .where(Consent.voice_id == voice.id)
                .order_by(Consent.version.desc())
                .limit(1)
            )
            language = req.language or (voice.languages[0] if voice.languages else "en")
            refusal = self._policy(session, req, tenant, voice, consent, language)
            if refusal is None:
                plan_voice = (
                    voice.id,
                    voice.name,
                    voice.engine,
                    _sha(repr(sorted((voice.engine_state or {}).items()))),
                )
                assert consent is not None
                consent_ref = (consent.id, consent.version)
        if refusal is not None:
            self._record_refusal(req, refusal[0], refusal[1])
            raise PolicyRefused(refusal[0].message, refusal_code=refusal[0].code)
        t1 = time.perf_counter()
        text = prepare_text(self.runtime, req.text, language)
        t2 = time.perf_counter()
        return Plan(
            req,
            plan_voice[0],
            plan_voice[1],
            plan_voice[2],
            consent_ref[0],
            consent_ref[1],
            language,
            text,
            (plan_voice[0], plan_voice[3]),
            {"policy": (t1 - t0) * 1e3, "text": (t2 - t1) * 1e3},
        )

    def _policy(
        self,
        session: Session,
        req: SpeechRequest,
        tenant: Tenant,
        voice: Voice,
        consent: Consent | None,
        language: str,
    ) -> tuple[Refusal, dict[str, Any]] | None:
        ref = {
            "voice_id": voice.id,
            "consent_id": consent.id if consent else None,
            "consent_version": consent.version if consent else None,
        }
        if voice.status != "active":
            return Refusal("voice_disabled", f"voice {voice.id} is {voice.status}"), ref
        if consent is None:
            return Refusal("no_consent", f"voice {voice.id} has no consent on record"), ref
        status = consents.effective_status(consent)
        if status != "active":
            return Refusal(
                f"consent_{status}", f"the consent for voice {voice.id} is {status}"
            ), ref
        if tenant.id not in (consent.scope_tenants or []):
            return Refusal(
                "consent_scope_tenant",
                f"the consent for voice {voice.id} does not cover this tenant",
            ), ref
        if req.purpose not in (consent.scope_purposes or []):
            return Refusal(
                "consent_scope_purpose",
                f"the consent for voice {voice.id} does not cover purpose {req.purpose!r} "
                f"(covers: {', '.join(consent.scope_purposes)})",
            ), ref
        if consent.scope_languages and language not in consent.scope_languages:
            return Refusal(
                "consent_scope_language",
                f"the consent for voice {voice.id} does not cover language {language!r}",
            ), ref
        ctx = PolicyContext(
            voice={
                "id": voice.id,
                "name": voice.name,
                "engine": voice.engine,
                "status": voice.status,
            },
            consent={
                "id": consent.id,
                "version": consent.version,
                "scope_tenants": consent.scope_tenants,
                "scope_purposes": consent.scope_purposes,
                "expires_at": consent.expires_at,
            },
            tenant={"id": tenant.id, "name": tenant.name},
        )
        sreq = SynthesisRequest(
            req.tenant_id, req.api_key_id, voice.id, req.text, language, req.purpose, req.stream
        )
        veto = self.runtime.pm.hook.check_synthesis(request=sreq, context=ctx)
        if veto is not None:
            return veto, ref
        return None

    # -- step 4 ----------------------------------------------------------------------------------

    def _handle(self, plan: Plan) -> VoiceHandle:
        handle = self.handles.get(plan.handle_key)
        if handle is None:
            with transaction(self.sessions) as session:
                voice = voices.get(session, plan.voice_id)
                assets = voices.load_assets(session, self.blobs, voice)
            handle = self.runtime.engine(plan.engine).prepare_voice(assets)
            self.handles.put(plan.handle_key, handle)
        return handle

    def _sentences(self, plan: Plan) -> Iterator[tuple[int, Audio, int]]:
        engine = self.runtime.engine(plan.engine)
        handle = self._handle(plan)
        req = plan.request
        opts = SynthesisOptions(
            language=plan.language, speed=req.speed, seed=req.seed, extra=req.options
        )
        for i, sentence in enumerate(plan.text.sentences):
            pieces: list[Audio] = []
            sr = 0
            for chunk in engine.synthesize(sentence, handle, replace(opts, seed=req.seed + i)):
                pieces.append(chunk.samples)
                sr = chunk.sample_rate
            if pieces:
                yield i, np.concatenate(pieces).astype(np.float32), sr

    # -- step 5 ----------------------------------------------------------------------------------

    def _post(self, audio: Audio, sr: int) -> Audio:
        s = self.runtime.settings
        out = audio_io.resample(audio, sr, s.output_sample_rate)
        out, _ = audio_io.normalize_loudness(
            out, s.output_sample_rate, s.loudness_target_lufs, s.true_peak_dbfs
        )
        return out

    # -- whole file ------------------------------------------------------------------------------

    def synthesize(self, plan: Plan) -> Result:
        s = self.runtime.settings
        sr = s.output_sample_rate
        t0 = time.perf_counter()
        gap = np.zeros(int(SENTENCE_GAP_S * sr), dtype=np.float32)
        parts: list[Audio] = []
        # Bound by the API route, which cancels it when the client disconnects: the sentences
        # not synthesized yet are skipped (engines that read the token stop sooner) and the
        # request is recorded as cancelled, not as a clip that was delivered.
        token = cancel.current()
        try:
            for i, audio, engine_sr in self._sentences(plan):
                _stop_if_cancelled(token)
                if i:
                    parts.append(gap)
                parts.append(audio_io.resample(audio, engine_sr, sr))
            _stop_if_cancelled(token)
        except VoiceSealError as exc:
            self._record_failure(plan, exc)
            raise
        if not parts:
            self._record_failure(plan, InvalidInput("the engine produced no audio for this text"))
            raise InvalidInput("the engine produced no audio for this text")
        t1 = time.perf_counter()
        audio, _ = audio_io.normalize_loudness(
            np.concatenate(parts), sr, s.loudness_target_lufs, s.true_peak_dbfs
        )
        audio = np.concatenate([audio, room_tone(self._shortfall(len(audio), sr))])
        t2 = time.perf_counter()
        payload = self._free_payload()
        marked = self.runtime.watermarker().embed(audio, sr, payload.to_bytes(4, "big"))
        t3 = time.perf_counter()
        verdict = self._verify(plan, marked, sr, payload)
        t4 = time.perf_counter()
        plan.timings_ms.update(
            synthesize=(t1 - t0) * 1e3,
            postprocess=(t2 - t1) * 1e3,
            watermark=(t3 - t2) * 1e3,
            verify=(t4 - t3) * 1e3,
        )
        encoded = audio_io.encode(marked, sr, plan.request.response_format)
        gen_id, payload = self._record(plan, marked, sr, payload, verdict, streamed=False)
        plan.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        return Result(
            gen_id,
            encoded,
            audio_io.MEDIA_TYPES[plan.request.response_format],
            sr,
            len(marked) / sr,
            payload,
        )

    # -- streamed --------------------------------------------------------------------------------

    def stream(self, plan: Plan) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Yield (encoded bytes, info) per sentence; every byte is watermarked before it is yielded.

        The first sentence is held back until its speaker check passes, so a protected-voice match
        stops the stream before any audio leaves. The record is written when the stream ends; a
        stream that ends early after some audio has left (the client went away, the engine
        failed) is recorded as ``interrupted`` with its payload and what was sent, so that a piece
        of it found later still traces back to this request.
        """
        s = self.runtime.settings
        sr = s.output_sample_rate
        fmt = plan.request.response_format
        if fmt not in ("pcm", "wav"):
            raise InvalidInput("streamed output supports response_format pcm or wav")
        payload = self._free_payload()
        embedder = self.runtime.watermarker().stream_embedder(sr, payload.to_bytes(4, "big"))
        delivered: list[Audio] = []
        t0 = time.perf_counter()
        first = True
        speaker: dict[str, Any] = {}
        gap = np.zeros(int(SENTENCE_GAP_S * sr), dtype=np.float32)
        if fmt == "wav":
            yield audio_io.wav_header(sr), {"type": "header"}
        try:
            for i, audio, engine_sr in self._sentences(plan):
                piece = self._post(audio, engine_sr)
                if i:
                    piece = np.concatenate([gap, piece])
                if first:
                    speaker = self._check_speaker(plan, piece, sr)
                    first = False
                    plan.timings_ms["first_chunk"] = (time.perf_counter() - t0) * 1e3
                marked = embedder.push(piece)
                delivered.append(marked)
                if marked.size:
                    yield audio_io.encode(marked, sr, "pcm"), {"type": "audio", "segment": i}
            delivered_n = sum(len(d) for d in delivered)
            pad = room_tone(self._shortfall(delivered_n, sr))
            if pad.size:
                marked = embedder.push(pad)
                delivered.append(marked)
                if marked.size:
                    yield audio_io.encode(marked, sr, "pcm"), {"type": "audio", "segment": -1}
            tail = embedder.flush()
            delivered.append(tail)
            if tail.size:
                yield audio_io.encode(tail, sr, "pcm"), {"type": "audio", "segment": -1}
        except BaseException as exc:
            # Marked audio already handed out must stay traceable whatever ends the stream
            # (GeneratorExit when the client goes away included); before that, a failure is
            # recorded like any other.
            if any(piece.size for piece in delivered):
                self._record_interrupted(plan, delivered, sr, payload, speaker, exc)
            elif isinstance(exc, VoiceSealError):
                self._record_failure(plan, exc)
            raise
        full = np.concatenate(delivered) if delivered else np.zeros(0, np.float32)
        verdict = self._verify(plan, full, sr, payload, block=False)
        plan.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        gen_id, _ = self._record(plan, full, sr, payload, verdict, streamed=True)
        yield b"", {"type": "done", "generation_id": gen_id, "duration_s": len(full) / sr}

    def _record_interrupted(
        self,
        plan: Plan,
        delivered: list[Audio],
        sr: int,
        payload: int,
        speaker: dict[str, Any],
        exc: BaseException,
    ) -> None:
        """Record a stream that ended early after audio left: the payload, the hash and
        landmarks of what was sent, the first sentence's speaker check, and why it ended."""
        sent = np.concatenate(delivered)
        if isinstance(exc, VoiceSealError):
            reason = (getattr(exc, "code", "failed"), exc.message)
        elif isinstance(exc, GeneratorExit):
            reason = ("client_disconnected", "the client closed the stream")
        else:
            reason = ("engine_error", f"the stream failed: {type(exc).__name__}")
        plan.timings_ms["interrupted_after_s"] = len(sent) / sr
        try:
            self._record(plan, sent, sr, payload, dict(speaker), streamed=True, interrupted=reason)
        except Exception:  # the original end of the stream is what the caller must see
            log.exception("could not record the interrupted stream of payload %08x", payload)

    # -- steps 6-8 helpers -----------------------------------------------------------------------

    def _shortfall(self, n: int, sr: int) -> int:
        """Samples of room tone needed so the mark can be detected (and so verified) at all.

        A one-word answer is shorter than the watermark's check needs; rather than deliver audio
        whose mark cannot be checked, it gets an inaudible room-tone tail up to that length.
        """
        target = verify_seconds(self.runtime.watermarker().capabilities.extra)
        return max(int(target * sr) - n, 0)

    def _free_payload(self) -> int:
        with transaction(self.sessions) as session:
            for _ in range(16):
                candidate = secrets.randbits(32)
                taken = session.scalar(
                    select(Generation.id).where(Generation.watermark_payload == candidate)
                )
                if taken is None:
                    return candidate
        raise VoiceSealError("could not allocate a free watermark payload")

    def _check_speaker(self, plan: Plan, audio: Audio, sr: int) -> dict[str, Any]:
        """Step 7's speaker rules: refuse (and record) an output closer to a protected voice than
        to its own, or too far from its own voice's fingerprint."""
        s = self.runtime.settings
        verdict = self._speaker_scores(plan, audio, sr)
        sim_voice: float | None = verdict["similarity_to_voice"]
        best_sim: float | None = verdict["max_protected_similarity"]
        protected_id = verdict["protected_voice_id"]
        if (
            best_sim is not None
            and best_sim >= s.protected_match_threshold
            and (sim_voice is None or best_sim > sim_voice + s.protected_margin)
        ):
            self._record_refusal(
                plan.request,
                Refusal(
                    "protected_voice",
                    f"the output matches protected voice {protected_id} "
                    f"({best_sim:.3f}) better than its own voice ({(sim_voice or 0):.3f})",
                ),
                {
                    "voice_id": plan.voice_id,
                    "consent_id": plan.consent_id,
                    "consent_version": plan.consent_version,
                    "status": "violation",
                    "protected_voice_id": protected_id,
                    "max_protected_similarity": best_sim,
                    "similarity_to_voice": sim_voice,
                },
            )
            raise PolicyRefused(
                "the output matches a protected voice better than its own voice; "
                "it was blocked and recorded as a violation",
                refusal_code="protected_voice",
            )
        if sim_voice is not None and sim_voice < s.output_match_threshold:
            self._record_refusal(
                plan.request,
                Refusal(
                    "speaker_mismatch",
                    f"the output does not match the voice's fingerprint "
                    f"(similarity {sim_voice:.3f} < {s.output_match_threshold:.3f})",
                ),
                {
                    "voice_id": plan.voice_id,
                    "consent_id": plan.consent_id,
                    "consent_version": plan.consent_version,
                    "status": "failed",
                    "similarity_to_voice": sim_voice,
                },
            )
            raise VoiceSealError(
                "the synthesized audio did not match the voice's fingerprint; nothing was delivered"
            )
        return verdict

    def _verify(
        self, plan: Plan, audio: Audio, sr: int, payload: int, *, block: bool = True
    ) -> dict[str, Any]:
        verdict = (
            self._check_speaker(plan, audio, sr) if block else self._speaker_scores(plan, audio, sr)
        )
        det = self.runtime.watermarker().detect(audio, sr)
        ok = det is not None and int.from_bytes(det.payload, "big") == payload
        verdict["watermark_confidence"] = det.confidence if det else None
        if not ok:
            # Never deliver (or, when streamed, never record as delivered) unverifiable audio.
            if block:
                self._record_failure(plan, WatermarkError("watermark verification failed"))
                if self._shortfall(0, sr) and plan.text.normalized.count(" ") < 2:
                    raise InvalidInput(
                        "the output is too short to carry a verifiable watermark; nothing was "
                        "delivered (send a few more words)"
                    )
                raise WatermarkError(
                    "the watermark could not be verified in the output; nothing was delivered"
                )
            verdict["watermark_failed"] = True
        return verdict

    def _speaker_scores(self, plan: Plan, audio: Audio, sr: int) -> dict[str, Any]:
        encoder = self.runtime.speaker_encoder()
        vec = encoder.embed(audio, sr)
        with transaction(self.sessions) as session:
            own = voices.centroid_of(session, plan.voice_id, encoder.name)
            prot = fingerprints.nearest(
                session, vec, encoder=encoder.name, kind="protected", top_k=1
            )
        return {
            "encoder": encoder.name,
            "vector": vec,
            "similarity_to_voice": fingerprints.cosine(vec, own) if own is not None else None,
            "max_protected_similarity": prot[0].similarity if prot else None,
            "protected_voice_id": prot[0].protected_voice_id if prot else None,
        }

    def _record(
        self,
        plan: Plan,
        audio: Audio,
        sr: int,
        payload: int,
        verdict: dict[str, Any],
        *,
        streamed: bool,
        interrupted: tuple[str, str] | None = None,
    ) -> tuple[str, int]:
        req = plan.request
        engine = self.runtime.engine(plan.engine)
        wm = self.runtime.watermarker()
        hashes = content_fp.landmarks(audio, sr)
        pcm = audio_io.encode(audio, sr, "pcm")
        status = "failed" if verdict.get("watermark_failed") else "delivered"
        if interrupted is not None:
            status = "interrupted"
        code, reason = interrupted or (None, None)
        try:
            with transaction(self.sessions) as session:
                gen = Generation(
                    tenant_id=req.tenant_id,
                    api_key_id=req.api_key_id,
                    voice_id=plan.voice_id,
                    consent_id=plan.consent_id,
                    consent_version=plan.consent_version,
                    status=status,
                    refusal_code=code,
                    refusal_reason=reason,
                    purpose=req.purpose,
                    engine=engine.name,
                    engine_version=engine.version,
                    model_versions={"watermarker": f"{wm.name}/{wm.version}"},
                    language=plan.language,
                    text_sha256=_sha(req.text),
                    text_chars=len(req.text),
                    audio_sha256=hashlib.sha256(pcm).hexdigest(),
                    duration_s=len(audio) / sr,
                    sample_rate=sr,
                    response_format=req.response_format,
                    streamed=streamed,
                    watermarker=wm.name,
                    watermark_payload=payload,
                    watermark_confidence=verdict.get("watermark_confidence"),
                    speaker_encoder=verdict.get("encoder"),
                    speaker_vector=fingerprints.to_bytes(verdict["vector"]),
                    similarity_to_voice=verdict.get("similarity_to_voice"),
                    max_protected_similarity=verdict.get("max_protected_similarity"),
                    timings_ms={k: round(v, 2) for k, v in plan.timings_ms.items()},
                )
                session.add(gen)
                session.flush()
                session.add_all(
                    FingerprintHash(generation_id=gen.id, hash=h, offset=o) for h, o in hashes
                )
                chain.append(
                    session,
                    f"generation.{status}",
                    actor_key_id=req.api_key_id,
                    tenant_id=req.tenant_id,
                    subject_type="generation",
                    subject_id=gen.id,
                    data={
                        "voice_id": plan.voice_id,
                        "consent_id": plan.consent_id,
                        "watermark_payload": payload,
                        "audio_sha256": gen.audio_sha256,
                    },
                )
                gen_id = gen.id
        except IntegrityError:
            # Another request took this payload between allocation and insert (two concurrent
            # requests drawing the same random 32-bit value): the audio already carries it, so
            # it is not delivered.
            raise VoiceSealError("watermark payload collision; retry the request") from None
        self._notify_generation(gen_id)
        return gen_id, payload

    def _notify_generation(self, gen_id: str) -> None:
        try:
            self.runtime.pm.hook.generation_recorded(record={"id": gen_id})
        except Exception:  # notifications must not undo a committed generation
            log.exception("generation_recorded hook failed for %s", gen_id)

    def _record_refusal(self, req: SpeechRequest, refusal: Refusal, ref: dict[str, Any]) -> None:
        status = ref.pop("status", "refused")
        with transaction(self.sessions) as session:
            gen = Generation(
                tenant_id=req.tenant_id,
                api_key_id=req.api_key_id,
                voice_id=ref.get("voice_id"),
                consent_id=ref.get("consent_id"),
                consent_version=ref.get("consent_version"),
                status=status,
                refusal_code=refusal.code,
                refusal_reason=refusal.message,
                purpose=req.purpose,
                text_sha256=_sha(req.text),
                text_chars=len(req.text),
                response_format=req.response_format,
                streamed=req.stream,
                protected_voice_id=ref.get("protected_voice_id"),
                max_protected_similarity=ref.get("max_protected_similarity"),
                similarity_to_voice=ref.get("similarity_to_voice"),
            )
            session.add(gen)
            session.flush()
            chain.append(
                session,
                f"generation.{status}",
                actor_key_id=req.api_key_id,
                tenant_id=req.tenant_id,
                subject_type="generation",
                subject_id=gen.id,
                data={
                    "code": refusal.code,
                    "reason": refusal.message,
                    "voice_id": ref.get("voice_id"),
                },
            )

    def _record_failure(self, plan: Plan, exc: VoiceSealError) -> None:
        self._record_refusal(
            plan.request,
            Refusal(getattr(exc, "code", "failed"), exc.message),
            {
                "voice_id": plan.voice_id,
                "consent_id": plan.consent_id,
                "consent_version": plan.consent_version,
                "status": "failed",
            },
        )


def _stop_if_cancelled(token: cancel.CancelToken | None) -> None:
    if token is not None and token.cancelled:
        raise Cancelled("the client went away before the audio was ready")
