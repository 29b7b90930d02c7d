"""Speech request (OpenAI's fields plus ours) and generation records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from voiceseal.registry.models import Generation


class SpeechCreate(BaseModel):
    model: str = Field(
        default="", max_length=100, description="engine name; empty = the voice's engine"
    )
    input: str = Field(max_length=100_000)
    voice: str = Field(min_length=1, max_length=200, description="voice id or name")
    response_format: Literal["wav", "flac", "mp3", "opus", "aac", "pcm"] = "wav"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] | None = None
    instructions: str | None = Field(default=None, max_length=4096)
    # VoiceSeal extensions
    language: str | None = Field(default=None, max_length=16)
    purpose: str = Field(default="tts", max_length=64)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class GenerationPublic(BaseModel):
    id: str
    object: Literal["audio.generation"] = "audio.generation"
    created_at: datetime
    tenant_id: str
    api_key_id: str | None
    voice_id: str | None
    consent_id: str | None
    consent_version: int | None
    status: str
    refusal_code: str | None
    refusal_reason: str | None
    purpose: str
    engine: str
    engine_version: str
    language: str
    text_sha256: str
    text_chars: int
    audio_sha256: str | None
    duration_s: float | None
    response_format: str
    streamed: bool
    watermark_payload: str | None
    watermark_confidence: float | None
    similarity_to_voice: float | None
    max_protected_similarity: float | None
    timings_ms: dict[str, Any]

    @classmethod
    def of(cls, g: Generation) -> GenerationPublic:
        return cls(
            id=g.id,
            created_at=g.created_at,
            tenant_id=g.tenant_id,
            api_key_id=g.api_key_id,
            voice_id=g.voice_id,
            consent_id=g.consent_id,
            consent_version=g.consent_version,
            status=g.status,
            refusal_code=g.refusal_code,
            refusal_reason=g.refusal_reason,
            purpose=g.purpose,
            engine=g.engine,
            engine_version=g.engine_version,
            language=g.language,
            text_sha256=g.text_sha256,
            text_chars=g.text_chars,
            audio_sha256=g.audio_sha256,
            duration_s=g.duration_s,
            response_format=g.response_format,
            streamed=g.streamed,
            watermark_payload=f"{g.watermark_payload:08x}"
            if g.watermark_payload is not None
            else None,
            watermark_confidence=g.watermark_confidence,
            similarity_to_voice=g.similarity_to_voice,
            max_protected_similarity=g.max_protected_similarity,
            timings_ms=g.timings_ms or {},
        )
