"""Voice API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from voiceseal.registry.models import ProtectedVoice, Voice


class VoicePublic(BaseModel):
    id: str
    object: Literal["audio.voice"] = "audio.voice"
    name: str
    speaker_id: str
    engine: str
    status: str
    languages: list[str]
    created_at: datetime
    engine_options: dict[str, Any]

    @classmethod
    def of(cls, v: Voice) -> VoicePublic:
        return cls(
            id=v.id,
            name=v.name,
            speaker_id=v.speaker_id,
            engine=v.engine,
            status=v.status,
            languages=v.languages or [],
            created_at=v.created_at,
            engine_options=v.engine_options or {},
        )


class ProtectedVoicePublic(BaseModel):
    id: str
    object: Literal["protected_voice"] = "protected_voice"
    name: str
    reason: str
    created_at: datetime

    @classmethod
    def of(cls, p: ProtectedVoice) -> ProtectedVoicePublic:
        return cls(id=p.id, name=p.name, reason=p.reason, created_at=p.created_at)
