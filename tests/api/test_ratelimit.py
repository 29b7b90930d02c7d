"""Per-tenant rate limit and character quota: fixed windows in the database, 429 + Retry-After."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import APIRouter
from sqlalchemy.orm import Session, sessionmaker

import voiceseal
from voiceseal.api.deps import SessionDep, SettingsDep, TenantDep
from voiceseal.api.ratelimit import charge, usage
from voiceseal.api.routers import PLUGIN_PREFIX
from voiceseal.errors import RateLimited
from voiceseal.kit.db import transaction
from voiceseal.registry.models import Tenant
from voiceseal.settings import Settings

NOON = datetime(2026, 3, 4, 12, 0, 30, tzinfo=UTC)


class SpeakPlugin:
    """A route that charges like the speech endpoint does."""

    @voiceseal.hookimpl
    def register_routes(self, router: APIRouter) -> None:
        @router.post("/say")
        def say(
            *,
            body: dict[str, str],
            session: SessionDep,
            settings: SettingsDep,
            principal: TenantDep,
        ) -> dict[str, int]:
            tenant = session.get(Tenant, principal.tenant_id)
            assert tenant is not None
            charge(session, tenant, settings, chars=len(body["text"]))
            return {"chars": len(body["text"])}


def _charge(
    factory: sessionmaker[Session], tenant: Tenant, settings: Settings, **kwargs: Any
) -> None:
    with transaction(factory) as session:
        charge(session, tenant, settings, **kwargs)


def test_requests_per_minute(
    session_factory: sessionmaker[Session], settings: Settings, make_tenant: Any
) -> None:
    tenant = make_tenant(rate_limit_per_minute=3)
    for _ in range(3):
        _charge(session_factory, tenant, settings, now=NOON)
    with pytest.raises(RateLimited) as refused:
        _charge(session_factory, tenant, settings, now=NOON)
    assert refused.value.retry_after == 30  # to the end of the minute
    assert refused.value.extra["window"] == "minute"
    with transaction(session_factory) as session:
        # The refused request took its increment back.
        assert usage(session, tenant.id, "requests", now=NOON) == 3
    # The next minute is a new window.
    _charge(session_factory, tenant, settings, now=NOON + timedelta(seconds=30))


def test_character_quota_per_day(
    session_factory: sessionmaker[Session], settings: Settings, make_tenant: Any
) -> None:
    tenant = make_tenant(char_quota_per_day=100)
    _charge(session_factory, tenant, settings, chars=60, now=NOON)
    with pytest.raises(RateLimited) as refused:
        _charge(session_factory, tenant, settings, chars=41, now=NOON)
    assert refused.value.retry_after == 12 * 3600 - 30  # to midnight UTC
    _charge(session_factory, tenant, settings, chars=40, now=NOON)
    with pytest.raises(RateLimited, match="on their own"):
        _charge(session_factory, tenant, settings, chars=101, now=NOON)
    with transaction(session_factory) as session:
        assert usage(session, tenant.id, "chars", now=NOON) == 100
        # The refused requests were not counted either.
        assert usage(session, tenant.id, "requests", now=NOON) == 2
    _charge(session_factory, tenant, settings, chars=100, now=NOON + timedelta(days=1))


def test_defaults_come_from_settings(
    session_factory: sessionmaker[Session], settings: Settings, make_tenant: Any
) -> None:
    tenant = make_tenant()
    strict = settings.model_copy(update={"rate_limit_per_minute": 1})
    _charge(session_factory, tenant, strict, now=NOON)
    with pytest.raises(RateLimited):
        _charge(session_factory, tenant, strict, now=NOON)


def test_concurrent_charges_never_exceed_the_limit(
    session_factory: sessionmaker[Session],
    settings: Settings,
    make_tenant: Any,
) -> None:
    tenant = make_tenant(rate_limit_per_minute=25)
    accepted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            try:
                _charge(session_factory, tenant, settings, now=NOON)
                outcome = accepted
            except RateLimited:
                outcome = refused
            with lock:
                outcome.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(accepted), len(refused)) == (25, 15)
    with transaction(session_factory) as session:
        assert usage(session, tenant.id, "requests", now=NOON) == 25


def test_429_with_retry_after(plugin_client: Any, make_tenant: Any, make_key: Any) -> None:
    tenant = make_tenant(rate_limit_per_minute=2)
    headers = {"Authorization": f"Bearer {make_key('tenant', tenant.id)}"}
    with plugin_client(SpeakPlugin()) as client:
        answers = [
            client.post(f"{PLUGIN_PREFIX}/say", json={"text": "hi"}, headers=headers)
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited" and refused.json()["limit"] == 2
