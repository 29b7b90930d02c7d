"""Consent routes (admin; auditors may read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from starlette.responses import Response

from voiceseal.api.deps import AdminDep, AuditorDep, BlobsDep, RuntimeDep, SessionDep
from voiceseal.api.idempotency import IdempotencyDep
from voiceseal.api.problems import render
from voiceseal.consents import service
from voiceseal.consents.schemas import ConsentCreate, ConsentPublic, ConsentRevoke
from voiceseal.voices import service as voices

router = APIRouter(tags=["consents"])


@router.post("/v1/audio/voice_consents", status_code=201, response_model=ConsentPublic)
def create_consent(
    *, body: ConsentCreate, session: SessionDep, principal: AdminDep, idem: IdempotencyDep
) -> Response:
    """Issue a consent statement (with a fresh nonce) for the speaker to read aloud."""
    if (replay := idem.begin(session)) is not None:
        return replay
    issued = service.issue(
        session,
        speaker_name=body.speaker_name,
        speaker_id=body.speaker_id,
        tenants=body.tenants,
        purposes=body.purposes,
        languages=body.languages,
        expires_at=body.expires_at,
        actor_key_id=principal.api_key_id,
    )
    return idem.respond(session, ConsentPublic.of(issued.consent), status_code=201)


@router.post("/v1/audio/voice_consents/{consent_id}/recording", response_model=ConsentPublic)
def upload_recording(
    *,
    consent_id: str,
    request: Request,
    recording: Annotated[UploadFile, File(description="the speaker reading the statement")],
    session: SessionDep,
    runtime: RuntimeDep,
    blobs: BlobsDep,
    principal: AdminDep,
    idem: IdempotencyDep,
) -> Response:
    """Verify the spoken statement: transcript and nonce, not synthetic; every score is stored."""
    if (replay := idem.begin(session)) is not None:
        return replay
    data = recording.file.read(runtime.settings.max_upload_bytes + 1)
    outcome = service.verify_recording(
        session, runtime, blobs, consent_id, data, actor_key_id=principal.api_key_id
    )
    if not outcome.ok:
        # The refusal is committed with the request (its record is the point); the answer is an error.
        return idem.finish(
            session,
            render(
                request,
                status=422,
                code=f"consent_{outcome.code}",
                title="Consent recording refused",
                detail=outcome.reason,
                extra={"consent_id": consent_id, "checks": outcome.checks},
            ),
        )
    return idem.respond(session, ConsentPublic.of(outcome.consent))


@router.post("/v1/audio/voice_consents/{consent_id}/revoke", response_model=ConsentPublic)
def revoke_consent(
    *, consent_id: str, body: ConsentRevoke, session: SessionDep, principal: AdminDep
) -> ConsentPublic:
    """Revoke a consent: appended as an event; the next synthesis request is refused."""
    consent = service.revoke(
        session, consent_id, reason=body.reason, actor_key_id=principal.api_key_id
    )
    return ConsentPublic.of(consent)


@router.get("/v1/audio/voice_consents/{consent_id}", response_model=ConsentPublic)
def get_consent(*, consent_id: str, session: SessionDep, principal: AuditorDep) -> ConsentPublic:
    """One consent with its events."""
    consent = service.get(session, consent_id)
    events = {c.id: e for c, e in service.history(session, consent.speaker_id)}
    return ConsentPublic.of(consent, events.get(consent.id, []))


@router.get("/v1/audio/voices/{voice_id}/consents", response_model=list[ConsentPublic])
def voice_consent_history(
    *, voice_id: str, session: SessionDep, principal: AuditorDep
) -> list[ConsentPublic]:
    """Every consent of the voice's speaker, oldest first, each with its full event history."""
    voice = voices.get(session, voice_id)
    return [ConsentPublic.of(c, ev) for c, ev in service.history(session, voice.speaker_id)]
