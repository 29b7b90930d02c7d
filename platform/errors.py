"""The project's error tree. Every error carries an HTTP status and a stable ``code``.

One handler renders them as RFC 9457 problem+json (or OpenAI's error shape on the OpenAI-compatible
routes); the CLI prints ``message`` on one line. Messages are written for the person who must act.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VoiceSealError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        #: Extra, JSON-able fields added to the problem document (never secrets).
        self.extra = extra


class InvalidInput(VoiceSealError):
    status_code = 422
    code = "invalid_input"
    title = "Invalid input"


class InvalidAudio(InvalidInput):
    code = "invalid_audio"
    title = "Invalid audio"


class PayloadTooLarge(VoiceSealError):
    status_code = 413
    code = "payload_too_large"
    title = "Payload too large"


class NotFound(VoiceSealError):
    status_code = 404
    code = "not_found"
    title = "Not found"


class Conflict(VoiceSealError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class Unauthorized(VoiceSealError):
    status_code = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(VoiceSealError):
    status_code = 403
    code = "forbidden"
    title = "Forbidden"


class PolicyRefused(Forbidden):
    """The request is well-formed but policy (consent, scope, protected voice) refuses it."""

    code = "policy_refused"
    title = "Refused by policy"


class RateLimited(VoiceSealError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, message: str, retry_after: float, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class Unavailable(VoiceSealError):
    status_code = 503
    code = "unavailable"
    title = "Service unavailable"


class Overloaded(Unavailable):
    """The engine's bounded queue is full: back-pressure, retry after ``retry_after`` seconds."""

    code = "overloaded"
    title = "Overloaded"

    def __init__(self, message: str, retry_after: float = 1.0, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class Cancelled(VoiceSealError):
    """The client went away (disconnected mid-stream); the request's work was dropped.

    Nobody reads the response; the status (nginx's 499) only labels the record and the logs.
    """

    status_code = 499
    code = "cancelled"
    title = "Client closed request"


class EngineFailed(VoiceSealError):
    """The engine failed on this request (the others it serves are unaffected)."""

    status_code = 500
    code = "engine_failed"
    title = "Synthesis failed"


class UnknownComponent(NotFound):
    code = "unknown_component"
    title = "Unknown component"


class ComponentUnavailable(Unavailable):
    code = "component_unavailable"
    title = "Component unavailable"


class BlobStoreError(Unavailable):
    code = "blob_store_error"
    title = "Blob store error"


class WatermarkError(VoiceSealError):
    status_code = 500
    code = "watermark_error"
    title = "Watermark verification failed"
