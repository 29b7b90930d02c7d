"""Audit-log listing (cursor pagination, filters) and chain verification over the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.api.pagination import decode_cursor, encode_cursor
from voiceseal.kit.db import transaction
from voiceseal.registry.models import AuditEvent


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _make_tenants(client: TestClient, admin_key: str, n: int) -> list[str]:
    return [
        client.post("/v1/tenants", json={"name": f"t{i}"}, headers=auth(admin_key)).json()["id"]
        for i in range(n)
    ]


def test_pages_cover_everything_once_newest_first(
    client: TestClient, admin_key: str, auditor_key: str
) -> None:
    _make_tenants(client, admin_key, 5)
    seqs: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "action": "tenant.created"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/audit/events", params=params, headers=auth(auditor_key)).json()
        seqs += [e["seq"] for e in page["data"]]
        pages += 1
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert pages == 3
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 5


def test_datetime_keyset_pages(client: TestClient, admin_key: str) -> None:
    ids = _make_tenants(client, admin_key, 3)
    first = client.get("/v1/tenants?limit=2", headers=auth(admin_key)).json()
    rest = client.get(
        "/v1/tenants", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth(admin_key)
    ).json()
    assert [t["id"] for t in first["data"] + rest["data"]] == ids[::-1]
    assert rest == {"data": rest["data"], "next_cursor": None, "has_more": False}


def test_filters(client: TestClient, admin_key: str, auditor_key: str) -> None:
    ids = _make_tenants(client, admin_key, 2)
    client.patch(f"/v1/tenants/{ids[0]}", json={"status": "suspended"}, headers=auth(admin_key))

    def actions(**params: str) -> list[str]:
        page = client.get("/v1/audit/events", params=params, headers=auth(auditor_key)).json()
        return [e["action"] for e in page["data"]]

    assert actions(tenant_id=ids[0]) == ["tenant.updated", "tenant.created"]
    assert actions(subject_type="tenant", subject_id=ids[1]) == ["tenant.created"]
    assert actions(action="tenant.") == ["tenant.updated", "tenant.created", "tenant.created"]
    assert actions(action="tenant") == []
    assert set(actions(action="api_key.created")) == {"api_key.created"}


def test_bad_cursor_and_limits(client: TestClient, auditor_key: str) -> None:
    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": encode_cursor([1, 2])},
        {"limit": 0},
        {"limit": 101},
    ):
        response = client.get("/v1/audit/events", params=params, headers=auth(auditor_key))
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"


def test_cursor_round_trip() -> None:
    from datetime import UTC, datetime

    values = [datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "ten_abc", 7]
    assert decode_cursor(encode_cursor(values), 3) == values


def test_verify_over_the_api(
    client: TestClient, admin_key: str, auditor_key: str, session_factory: sessionmaker[Session]
) -> None:
    _make_tenants(client, admin_key, 2)
    ok = client.post("/v1/audit/verify", headers=auth(auditor_key)).json()
    assert ok["ok"] is True and ok["checked"] >= 4
    with transaction(session_factory) as session:
        session.execute(
            update(AuditEvent).where(AuditEvent.seq == 3).values(actor_key_id="key_forged")
        )
    broken = client.post("/v1/audit/verify", headers=auth(auditor_key)).json()
    assert broken["ok"] is False and broken["first_bad_seq"] == 3
    assert "edited" in broken["problem"]
