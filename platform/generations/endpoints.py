"""The OpenAI-compatible speech route and the models listing (tenant keys)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import partial
from itertools import chain
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from voiceseal.api import ratelimit
from voiceseal.api.deps import AnyRoleDep, BlobsDep, RuntimeDep, SessionMakerDep, TenantDep
from voiceseal.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from voiceseal.api.idempotency import IdempotencyDep
from voiceseal.errors import InvalidInput, VoiceSealError
from voiceseal.generations.schemas import SpeechCreate
from voiceseal.keys.principal import Principal
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.kit.cancel import CancelToken, bound
from voiceseal.orchestrator import Orchestrator, SpeechRequest
from voiceseal.registry.models import Tenant
from voiceseal.runtime import Runtime

router = APIRouter(tags=["speech"])

T = TypeVar("T")
Event = tuple[bytes, dict[str, Any]]


def _orchestrator(
    runtime: Runtime, sessions: sessionmaker[Session], blobs: LocalBlobStore
) -> Orchestrator:
    settings = runtime.settings

    def charge(session: Session, tenant: Tenant, chars: int) -> None:
        ratelimit.charge(session, tenant, settings, requests=1, chars=chars)

    return Orchestrator(runtime, sessions, blobs, charge=charge)


@router.post(
    "/v1/audio/speech",
    response_model=None,
    responses={200: {"content": {"audio/wav": {}, "audio/mpeg": {}, "text/event-stream": {}}}},
)
async def create_speech(
    *,
    request: Request,
    body: SpeechCreate,
    runtime: RuntimeDep,
    sessions: SessionMakerDep,
    blobs: BlobsDep,
    principal: TenantDep,
    idem: IdempotencyDep,
) -> Response:
    """Synthesize speech with a consented voice; every byte is watermarked and recorded.

    With an ``Idempotency-Key`` (whole-file responses only), a retry replays the first
    response, audio and generation headers included, instead of making and billing a second
    clip; a retry while the first is still being made gets 409.

    Async only to learn of a disconnect while the audio is made: the registry and the engines
    run in worker threads, as they would under a sync route."""
    assert principal.tenant_id is not None
    if body.model and body.model not in runtime.components.names("engines"):
        raise InvalidInput(f"unknown model {body.model!r}; see GET /v1/models", param="model")
    if idem.key is not None:
        if body.stream_format is not None:
            raise InvalidInput(
                "Idempotency-Key is for whole-file responses: a stream cannot be replayed",
                param=IDEMPOTENCY_HEADER,
            )
        if (replay := await anyio.to_thread.run_sync(idem.reserve, sessions)) is not None:
            return replay
        try:
            response = await _speech(body, runtime, sessions, blobs, principal, request)
        except BaseException:
            with anyio.CancelScope(shield=True):  # a failed first try must not block a retry
                await anyio.to_thread.run_sync(idem.release, sessions)
            raise
        return await anyio.to_thread.run_sync(
            partial(idem.complete, sessions, response, replay_headers=_GENERATION_HEADERS)
        )
    return await _speech(body, runtime, sessions, blobs, principal, request)


#: The whole-file response's headers that name its generation (replayed with its audio).
_GENERATION_HEADERS = ("X-Generation-Id", "X-Watermark-Payload")


async def _speech(
    body: SpeechCreate,
    runtime: Runtime,
    sessions: sessionmaker[Session],
    blobs: LocalBlobStore,
    principal: Principal,
    request: Request,
) -> Response:
    assert principal.tenant_id is not None
    req = SpeechRequest(
        tenant_id=principal.tenant_id,
        api_key_id=principal.api_key_id,
        voice=body.voice,
        text=body.input,
        response_format=body.response_format,
        speed=body.speed,
        language=body.language,
        purpose=body.purpose,
        seed=body.seed,
        stream=body.stream_format is not None,
        model=body.model or None,
    )
    orch = _orchestrator(runtime, sessions, blobs)
    plan = await anyio.to_thread.run_sync(orch.plan, req)
    if body.stream_format is None:
        # The token tells engines which work belongs to this one request (its later sentences
        # are not new arrivals) and stops that work if the client disconnects meanwhile.
        result = await _unless_disconnected(request, partial(orch.synthesize, plan))
        return Response(
            result.audio,
            media_type=result.media_type,
            headers={
                "X-Generation-Id": result.generation_id,
                "X-Watermark-Payload": f"{result.watermark_payload:08x}",
            },
        )
    if body.response_format not in ("pcm", "wav"):
        raise InvalidInput("streaming supports response_format pcm or wav", param="response_format")
    steps = _Steps(orch.stream(plan))
    # The pipeline runs up to its first audio here, before any status is sent, so that what
    # refuses a request before its first byte (a full engine queue, a protected voice, text the
    # engine cannot take) answers with its own status and error body, not a broken 200 stream.
    events = chain(await anyio.to_thread.run_sync(steps.prime), iter(steps.next, None))
    if body.stream_format == "sse":
        return _ClosingStream(_sse(events), steps, media_type="text/event-stream")
    return _ClosingStream(
        _audio(events),
        steps,
        media_type="audio/wav" if body.response_format == "wav" else "audio/pcm",
    )


async def _unless_disconnected(request: Request, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread with a fresh cancel token bound, which is cancelled if
    the client disconnects before the work is done (the engine then drops the request)."""
    token = CancelToken()

    def run() -> T:
        with bound(token):
            return work()

    async def watch() -> None:
        # The body has been read: what the server receives next is the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        token.cancel()

    outcome: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            # Not abandoned on cancellation: the thread finishes (or sees the token) first, so
            # that what it records is complete before the request ends.
            outcome.append(await anyio.to_thread.run_sync(run))
        except Exception as exc:  # raised below, not wrapped in the task group's ExceptionGroup
            failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return outcome[0]


class _Steps:
    """The pipeline's events, each step run with the request's cancel token bound (see
    :mod:`voiceseal.kit.cancel`), and a :meth:`close` that any thread may call."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = events
        self.token = CancelToken()
        self._lock = threading.Lock()  # held by the step in progress
        self._ended = False

    def next(self) -> Event | None:
        """The next event, or None once the pipeline ended or was closed."""
        with self._lock, bound(self.token):
            if self._ended:
                return None
            try:
                return next(self._events)
            except BaseException:
                self._ended = True  # finished, failed or closed: nothing more comes
                raise

    def prime(self) -> list[Event]:
        """Events up to and including the first audio (or the end)."""
        head: list[Event] = []
        while (event := self.next()) is not None:
            head.append(event)
            if event[1]["type"] in ("audio", "done"):
                break
        return head

    def close(self) -> None:
        """Cancel the work in progress at once, then close the pipeline when its step returns."""
        self.token.cancel()
        with self._lock, bound(self.token):
            self._ended = True
            close = getattr(self._events, "close", None)
            if close is not None:
                close()


_END = object()


async def _in_threads(items: Iterator[T]) -> AsyncIterator[T]:
    """Starlette's ``iterate_in_threadpool``, except that a cancelled wait (the client went
    away) returns at once instead of waiting for the worker's step to finish."""
    while True:
        item = await anyio.to_thread.run_sync(next, items, _END, abandon_on_cancel=True)
        if item is _END:
            return
        yield item  # type: ignore[misc]


class _ClosingStream(StreamingResponse):
    """A streamed response that always ends its pipeline: on a disconnect (or any other end)
    the engine's work is cancelled and the pipeline closed, freeing what it holds (batch rows).

    Starlette alone never closes a sync iterator it was given: a disconnected request's generator
    would run on until its current sentence ends and then linger until garbage collection.
    """

    def __init__(self, content: Iterator[Any], steps: _Steps, media_type: str) -> None:
        super().__init__(_in_threads(content), media_type=media_type)
        self._steps = steps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._steps.token.cancel()  # from the event loop: stops the engine's wait at once
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._steps.close)


def _audio(events: Iterable[Event]) -> Iterator[bytes]:
    for data, _info in events:
        if data:
            yield data


def _sse(events: Iterable[Event]) -> Iterator[str]:
    """OpenAI's SSE shape: ``speech.audio.delta`` events with base64 audio, then ``speech.audio.done``."""
    try:
        for data, info in events:
            if info["type"] == "audio" and data:
                yield (
                    "data: "
                    + json.dumps(
                        {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
                    )
                    + "\n\n"
                )
            elif info["type"] == "done":
                yield (
                    "data: "
                    + json.dumps(
                        {
                            "type": "speech.audio.done",
                            "generation_id": info["generation_id"],
                            "duration_s": info["duration_s"],
                        }
                    )
                    + "\n\n"
                )
    except VoiceSealError as exc:
        yield (
            "data: "
            + json.dumps({"type": "error", "error": {"message": exc.message, "code": exc.code}})
            + "\n\n"
        )


@router.get("/v1/models")
def list_models(*, runtime: RuntimeDep, principal: AnyRoleDep) -> dict[str, object]:
    """Synthesis engines, in OpenAI's model-list shape."""
    data = [
        {
            "id": s.name,
            "object": "model",
            "created": 0,
            "owned_by": s.plugin,
            "description": s.description,
            "available": s.unavailable is None,
        }
        for s in runtime.components.specs("engines")
    ]
    return {"object": "list", "data": data}
