"""Consent API shapes (OpenAI-like ``audio.voice_consent`` objects)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from voiceseal.consents.service import effective_status
from voiceseal.registry.models import Consent, ConsentEvent


class ConsentCreate(BaseModel):
    speaker_name: str | None = Field(default=None, max_length=200)
    speaker_id: str | None = None
    tenants: list[str] = Field(min_length=1, max_length=100, description="tenant ids or names")
    purposes: list[str] = Field(min_length=1, max_length=20)
    languages: list[str] = Field(default_factory=lambda: ["en"], max_length=20)
    expires_at: datetime | None = None


class ConsentRevoke(BaseModel):
    reason: str = Field(default="", max_length=2000)


class ConsentEventPublic(BaseModel):
    event: str
    reason: str
    created_at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, e: ConsentEvent) -> ConsentEventPublic:
        return cls(event=e.event, reason=e.reason, created_at=e.created_at, data=e.data or {})


class ConsentPublic(BaseModel):
    id: str
    object: Literal["audio.voice_consent"] = "audio.voice_consent"
    speaker_id: str
    voice_id: str | None
    version: int
    status: str
    statement: str
    nonce_expires_at: datetime
    scope_tenants: list[str]
    scope_purposes: list[str]
    scope_languages: list[str]
    expires_at: datetime | None
    created_at: datetime
    verification: dict[str, Any]
    events: list[ConsentEventPublic] | None = None

    @classmethod
    def of(cls, c: Consent, events: list[ConsentEvent] | None = None) -> ConsentPublic:
        return cls(
            id=c.id,
            speaker_id=c.speaker_id,
            voice_id=c.voice_id,
            version=c.version,
            status=effective_status(c),
            statement=c.statement,
            nonce_expires_at=c.nonce_expires_at,
            scope_tenants=c.scope_tenants,
            scope_purposes=c.scope_purposes,
            scope_languages=c.scope_languages,
            expires_at=c.expires_at,
            created_at=c.created_at,
            verification=c.verification or {},
            events=[ConsentEventPublic.of(e) for e in events] if events is not None else None,
        )
