"""A third-party plugin's policy veto and notifications, in the real pipeline."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.kit.db import transaction
from voiceseal.registry.models import Generation, Tenant
from voiceseal.runtime import Runtime, build_runtime
from voiceseal.settings import Settings

from ..plugins.every_hook import FORBIDDEN, EveryHook
from .conftest import Flow, bearer


@pytest.fixture
def every_hook() -> EveryHook:
    return EveryHook()


@pytest.fixture
def runtime(settings: Settings, every_hook: EveryHook) -> Runtime:
    return build_runtime(settings, extra_plugins=[every_hook])


def test_veto_is_recorded_and_notifications_arrive(
    flow: Flow,
    client: TestClient,
    tenant: Tenant,
    tenant_key: str,
    every_hook: EveryHook,
    session_factory: sessionmaker[Session],
) -> None:
    consent, voice = flow.registered_voice([tenant.id])
    # Readings the recogniser misheard leave refused statements before the verified one
    # (see Flow.verified_consent): each one issued, then refused.
    events = [(r["consent_id"], r["event"]) for r in every_hook.consents]
    retries = (len(events) - 2) // 2
    assert events[-2:] == [(consent["id"], "issued"), (consent["id"], "verified")]
    assert [e for _, e in events[:-2]] == ["issued", "refused"] * retries
    r = client.post(
        "/v1/audio/speech",
        headers=bearer(tenant_key),
        json={"input": f"Please say the {FORBIDDEN} now.", "voice": voice["id"]},
    )
    assert r.status_code == 403 and FORBIDDEN in r.json()["error"]["message"]
    with transaction(session_factory) as s:
        row = s.scalar(select(Generation).where(Generation.refusal_code == "forbidden_phrase"))
        assert row is not None and row.status == "refused"
    ok = client.post(
        "/v1/audio/speech",
        headers=bearer(tenant_key),
        json={"input": "A sentence every plugin allows.", "voice": voice["id"]},
    )
    assert ok.status_code == 200
    assert [g["id"] for g in every_hook.generations] == [ok.headers["x-generation-id"]]
