"""Records passed to the ``check_synthesis`` hook and the refusal it may return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SynthesisRequest:
    tenant_id: str
    api_key_id: str | None
    voice_id: str
    text: str
    language: str
    purpose: str
    stream: bool = False


@dataclass(frozen=True)
class PolicyContext:
    """Read in the request's own transaction: revocation takes effect with no cache in between."""

    voice: dict[str, Any]
    consent: dict[str, Any] | None
    tenant: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    """Why a request may not proceed. ``code`` is stable; ``message`` is for people."""

    code: str
    message: str
    plugin: str = ""
