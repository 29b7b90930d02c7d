"""The OpenAI-compatible speech route and the models listing (tenant keys)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

from fastapi import APIRouter
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response, StreamingResponse

from voiceseal.api import ratelimit
from voiceseal.api.deps import AnyRoleDep, BlobsDep, RuntimeDep, SessionMakerDep, TenantDep
from voiceseal.errors import InvalidInput, VoiceSealError
from voiceseal.generations.schemas import SpeechCreate
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.orchestrator import Orchestrator, Plan, SpeechRequest
from voiceseal.registry.models import Tenant
from voiceseal.runtime import Runtime

router = APIRouter(tags=["speech"])


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
def create_speech(
    *,
    body: SpeechCreate,
    runtime: RuntimeDep,
    sessions: SessionMakerDep,
    blobs: BlobsDep,
    principal: TenantDep,
) -> Response:
    """Synthesize speech with a consented voice; every byte is watermarked and recorded."""
    assert principal.tenant_id is not None
    if body.model and body.model not in runtime.components.names("engines"):
        raise InvalidInput(f"unknown model {body.model!r}; see GET /v1/models", param="model")
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
    plan = orch.plan(req)
    if body.stream_format is None:
        result = orch.synthesize(plan)
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
    if body.stream_format == "sse":
        return StreamingResponse(_sse(orch, plan), media_type="text/event-stream")
    return StreamingResponse(
        _audio(orch, plan), media_type="audio/wav" if body.response_format == "wav" else "audio/pcm"
    )


def _audio(orch: Orchestrator, plan: Plan) -> Iterator[bytes]:
    for data, _info in orch.stream(plan):
        if data:
            yield data


def _sse(orch: Orchestrator, plan: Plan) -> Iterator[str]:
    """OpenAI's SSE shape: ``speech.audio.delta`` events with base64 audio, then ``speech.audio.done``."""
    try:
        for data, info in orch.stream(plan):
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
