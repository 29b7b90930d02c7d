"""Voice routes: registration (admin, consent first), listings, protected voices."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from sqlalchemy import select
from starlette.responses import Response

from voiceseal.api.deps import AdminDep, AnyRoleDep, BlobsDep, RuntimeDep, SessionDep
from voiceseal.api.idempotency import IdempotencyDep
from voiceseal.api.pagination import Page, PageParamsDep, paginate
from voiceseal.errors import InvalidInput
from voiceseal.registry.models import Consent, ProtectedVoice, Voice
from voiceseal.voices import service
from voiceseal.voices.schemas import ProtectedVoicePublic, VoicePublic

router = APIRouter(tags=["voices"])


def _read(upload: UploadFile, limit: int) -> bytes:
    data = upload.file.read(limit + 1)
    return data


@router.post("/v1/audio/voices", status_code=201, response_model=VoicePublic)
def create_voice(
    *,
    name: Annotated[str, Form(max_length=200)],
    consent: Annotated[str, Form(description="id of an active, verified consent")],
    audio_sample: Annotated[list[UploadFile], File(description="reference clip(s)")],
    transcript: Annotated[str, Form(max_length=2000)] = "",
    language: Annotated[str, Form(max_length=16)] = "en",
    engine: Annotated[str, Form(max_length=100)] = "",
    engine_options: Annotated[str, Form(max_length=20000)] = "{}",
    gpt_model: Annotated[UploadFile | None, File()] = None,
    sovits_model: Annotated[UploadFile | None, File()] = None,
    session: SessionDep,
    runtime: RuntimeDep,
    blobs: BlobsDep,
    principal: AdminDep,
    idem: IdempotencyDep,
) -> Response:
    """Register a voice from its reference clip(s) under a verified consent."""
    if (replay := idem.begin(session)) is not None:
        return replay
    try:
        options = json.loads(engine_options or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"engine_options is not valid JSON: {exc.msg}") from None
    if not isinstance(options, dict):
        raise InvalidInput("engine_options must be a JSON object")
    limit = runtime.settings.max_upload_bytes
    clips = [service.ClipUpload(_read(f, limit), transcript, language) for f in audio_sample]
    files = {
        k: _read(f, 2 * 1024**3) for k, f in (("gpt", gpt_model), ("sovits", sovits_model)) if f
    }
    voice = service.register(
        session,
        runtime,
        blobs,
        name=name,
        consent_id=consent,
        clips=clips,
        engine=engine or None,
        engine_options=options,
        model_files=files,
        actor_key_id=principal.api_key_id,
    )
    return idem.respond(session, VoicePublic.of(voice), status_code=201)


@router.get("/v1/audio/voices", response_model=Page[VoicePublic])
def list_all_voices(
    *, session: SessionDep, principal: AdminDep, page: PageParamsDep
) -> Page[VoicePublic]:
    """Every registered voice (admin)."""
    found = paginate(session, select(Voice), keys=[Voice.created_at, Voice.id], params=page)
    return Page.build(found, VoicePublic.of)


@router.get("/v1/audio/voices/{voice_id}", response_model=VoicePublic)
def get_voice(*, voice_id: str, session: SessionDep, principal: AdminDep) -> VoicePublic:
    """One voice (admin)."""
    return VoicePublic.of(service.get(session, voice_id))


@router.get("/v1/voices", response_model=Page[VoicePublic])
def list_usable_voices(
    *, session: SessionDep, principal: AnyRoleDep, page: PageParamsDep
) -> Page[VoicePublic]:
    """Voices this caller may use: a tenant sees those whose active consent covers it."""
    stmt = select(Voice).where(Voice.status == "active")
    if principal.role == "tenant":
        covered = [
            c.voice_id
            for c in session.scalars(
                select(Consent).where(Consent.status == "active", Consent.voice_id.is_not(None))
            )
            if principal.tenant_id in (c.scope_tenants or [])
            and service.consents.effective_status(c) == "active"
        ]
        stmt = stmt.where(Voice.id.in_(covered))
    found = paginate(session, stmt, keys=[Voice.created_at, Voice.id], params=page)
    return Page.build(found, VoicePublic.of)


@router.post("/v1/protected_voices", status_code=201, response_model=ProtectedVoicePublic)
def create_protected_voice(
    *,
    name: Annotated[str, Form(max_length=200)],
    audio: Annotated[list[UploadFile], File()],
    reason: Annotated[str, Form(max_length=2000)] = "",
    session: SessionDep,
    runtime: RuntimeDep,
    blobs: BlobsDep,
    principal: AdminDep,
    idem: IdempotencyDep,
) -> Response:
    """Add a voice that may never be cloned (blocked at enrolment and at every generation)."""
    if (replay := idem.begin(session)) is not None:
        return replay
    clips = [service.ClipUpload(_read(f, runtime.settings.max_upload_bytes)) for f in audio]
    pv = service.add_protected(
        session,
        runtime,
        blobs,
        name=name,
        reason=reason,
        clips=clips,
        actor_key_id=principal.api_key_id,
    )
    return idem.respond(session, ProtectedVoicePublic.of(pv), status_code=201)


@router.get("/v1/protected_voices", response_model=Page[ProtectedVoicePublic])
def list_protected_voices(
    *, session: SessionDep, principal: AdminDep, page: PageParamsDep
) -> Page[ProtectedVoicePublic]:
    """Protected voices (admin)."""
    found = paginate(
        session,
        select(ProtectedVoice),
        keys=[ProtectedVoice.created_at, ProtectedVoice.id],
        params=page,
    )
    return Page.build(found, ProtectedVoicePublic.of)
