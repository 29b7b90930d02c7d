"""Failures mid-request lose nothing: a lost database is a clean 503 with no partial rows, and a
full disk while a blob is written leaves no row pointing at it."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.errors import Cancelled
from voiceseal.kit import blobstore
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.kit.cancel import CancelToken, bound
from voiceseal.kit.db import transaction
from voiceseal.orchestrator import Orchestrator, SpeechRequest
from voiceseal.registry.models import (
    Blob,
    Consent,
    FingerprintHash,
    Generation,
    Tenant,
    Voice,
    VoiceSample,
)
from voiceseal.runtime import Runtime
from voiceseal.settings import Settings

from .conftest import SPEAKER, Flow, bearer, sample_wav


@pytest.fixture
def lose_database_on() -> Iterator[list[str]]:
    """Statements whose text contains any of these fragments fail as if the server went away."""
    fragments: list[str] = []

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if any(f in statement for f in fragments):
            raise OperationalError(
                statement, params, ConnectionError("server closed the connection unexpectedly")
            )

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield fragments
    finally:
        event.remove(Engine, "before_cursor_execute", before)


def test_database_lost_while_recording_the_generation(
    flow: Flow,
    client: TestClient,
    tenant: Tenant,
    tenant_key: str,
    session_factory: sessionmaker[Session],
    lose_database_on: list[str],
) -> None:
    _, voice = flow.registered_voice([tenant.id])
    lose_database_on.append("INSERT INTO generations")
    r = client.post(
        "/v1/audio/speech",
        headers=bearer(tenant_key),
        json={"input": "This will not be recorded.", "voice": voice["id"]},
    )
    assert r.status_code == 503
    assert "nothing was saved" in r.json()["error"]["message"]
    lose_database_on.clear()
    with transaction(session_factory) as s:
        assert s.scalar(select(func.count()).select_from(Generation)) == 0


def test_disk_full_while_storing_reference_clip(
    flow: Flow,
    client: TestClient,
    tenant: Tenant,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consent = flow.verified_consent([tenant.id], SPEAKER)
    with transaction(session_factory) as s:
        blobs_before = s.scalar(select(func.count()).select_from(Blob))

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # The OS call that makes the bytes durable fails, as it does on a full disk.
    monkeypatch.setattr(blobstore.os, "fsync", full)
    wav, transcript = sample_wav(SPEAKER)
    r = flow.voice(consent["id"], wav, transcript)
    assert r.status_code == 503 and "No space left" in r.json()["detail"]
    monkeypatch.undo()
    with transaction(session_factory) as s:
        assert s.scalar(select(func.count()).select_from(Voice)) == 0
        assert s.scalar(select(func.count()).select_from(Blob)) == blobs_before
        assert (
            s.scalar(
                select(func.count()).select_from(VoiceSample).where(VoiceSample.kind == "reference")
            )
            == 0
        )
        c = s.get(Consent, consent["id"])
        assert c is not None and c.voice_id is None
    # Nothing half-written on disk either: no partial files left in the blob folder.
    assert list(settings.resolved_blob_dir.rglob(".incoming-*")) == []
    # Space is back: the same request now succeeds.
    assert flow.voice(consent["id"], wav, transcript).status_code == 201


def test_whole_file_request_cancelled_midway_is_recorded_not_delivered(
    flow: Flow,
    tenant: Tenant,
    runtime: Runtime,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    """The route cancels a whole-file request's token when its client disconnects; an engine
    that does not read the token still stops at the next sentence, and the request is recorded
    as cancelled with no clip stored (nothing was delivered)."""
    _, voice = flow.registered_voice([tenant.id])
    orch = Orchestrator(runtime, session_factory, LocalBlobStore(settings.resolved_blob_dir))
    plan = orch.plan(
        SpeechRequest(
            tenant_id=tenant.id,
            api_key_id=None,
            voice=voice["id"],
            text="The first sentence is made. The second one never is. Nor is the third.",
        )
    )
    token = CancelToken()
    engine = runtime.engine(plan.engine)
    made: list[str] = []
    real = engine.synthesize

    def synthesize_then_hang_up(text: str, *args: Any, **kwargs: Any) -> Any:
        made.append(text)
        yield from real(text, *args, **kwargs)
        token.cancel()  # the client goes away while the first sentence is being made

    with pytest.MonkeyPatch.context() as patch, bound(token):
        patch.setattr(engine, "synthesize", synthesize_then_hang_up)
        with pytest.raises(Cancelled):
            orch.synthesize(plan)
    assert len(made) == 1  # the later sentences were skipped
    with transaction(session_factory) as s:
        rows = s.execute(select(Generation.status, Generation.refusal_code)).all()
        assert [tuple(r) for r in rows] == [("failed", "cancelled")]
        assert s.scalar(select(func.count()).select_from(FingerprintHash)) == 0
