"""Auditor routes: trace a clip, list and trace generations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from sqlalchemy import select

from voiceseal.api.deps import AuditorDep, RuntimeDep, SessionDep
from voiceseal.api.pagination import Page, PageParamsDep, paginate
from voiceseal.audit import trace
from voiceseal.errors import NotFound, PayloadTooLarge
from voiceseal.generations.schemas import GenerationPublic
from voiceseal.registry.models import Generation

router = APIRouter(tags=["audit"])


@router.post("/v1/audit/detect")
def detect(
    *,
    file: Annotated[UploadFile, File(description="a clip found anywhere")],
    session: SessionDep,
    runtime: RuntimeDep,
    principal: AuditorDep,
) -> dict[str, object]:
    """Watermark → generation → voice → consent → tenant and key; else nearest voices and near-duplicates."""
    limit = runtime.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"upload is larger than the {limit}-byte limit")
    return trace.detect(session, runtime, data, actor_key_id=principal.api_key_id).as_dict()


@router.get("/v1/audit/generations", response_model=Page[GenerationPublic])
def list_generations(
    *,
    session: SessionDep,
    principal: AuditorDep,
    page: PageParamsDep,
    tenant_id: Annotated[str | None, Query(max_length=40)] = None,
    voice_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Page[GenerationPublic]:
    """Every generation record, newest first, with filters."""
    stmt = select(Generation)
    if tenant_id:
        stmt = stmt.where(Generation.tenant_id == tenant_id)
    if voice_id:
        stmt = stmt.where(Generation.voice_id == voice_id)
    if status:
        stmt = stmt.where(Generation.status == status)
    found = paginate(session, stmt, keys=[Generation.created_at, Generation.id], params=page)
    return Page.build(found, GenerationPublic.of)


@router.get("/v1/audit/generations/{generation_id}")
def get_generation(
    *, generation_id: str, session: SessionDep, principal: AuditorDep
) -> dict[str, object]:
    """One generation with its full trace."""
    gen = session.get(Generation, generation_id)
    if gen is None:
        raise NotFound(f"generation {generation_id} does not exist")
    return trace.trace_generation(session, gen)
