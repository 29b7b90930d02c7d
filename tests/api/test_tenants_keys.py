"""Tenants and API keys through the API: admin-only management, secrets shown once."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.kit.db import transaction
from voiceseal.registry.models import ApiKey, AuditEvent, Tenant


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _events(session_factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with transaction(session_factory) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


class TestTenants:
    def test_create_get_list(
        self, client: TestClient, admin_key: str, session_factory: sessionmaker[Session]
    ) -> None:
        created = client.post(
            "/v1/tenants",
            json={"name": "  Globex  ", "rate_limit_per_minute": 5},
            headers=auth(admin_key),
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["name"] == "Globex" and body["status"] == "active"
        assert body["rate_limit_per_minute"] == 5 and body["char_quota_per_day"] is None
        got = client.get(f"/v1/tenants/{body['id']}", headers=auth(admin_key))
        assert got.json() == body
        listed = client.get("/v1/tenants", headers=auth(admin_key)).json()
        assert [t["id"] for t in listed["data"]] == [body["id"]]
        [event] = _events(session_factory, "tenant.created")
        assert event.subject_id == body["id"] and event.tenant_id == body["id"]
        assert event.data["name"] == "Globex"

    def test_duplicate_name_is_a_conflict(
        self, client: TestClient, admin_key: str, tenant: Tenant
    ) -> None:
        response = client.post("/v1/tenants", json={"name": tenant.name}, headers=auth(admin_key))
        assert response.status_code == 409
        assert response.json()["code"] == "conflict"
        assert tenant.name in response.json()["detail"]

    def test_bad_names_and_unknown_fields(self, client: TestClient, admin_key: str) -> None:
        for body in (
            {"name": ""},
            {"name": "   "},
            {"name": "a\x00b"},
            {"name": "x" * 201},
            {"name": "ok", "surprise": 1},
            {"name": "ok", "rate_limit_per_minute": 0},
        ):
            response = client.post("/v1/tenants", json=body, headers=auth(admin_key))
            assert response.status_code == 422, body

    def test_tenant_key_sees_only_its_own_tenant(
        self, client: TestClient, tenant: Tenant, tenant_key: str, make_tenant: Any
    ) -> None:
        other = make_tenant("other")
        assert client.get(f"/v1/tenants/{tenant.id}", headers=auth(tenant_key)).status_code == 200
        hidden = client.get(f"/v1/tenants/{other.id}", headers=auth(tenant_key))
        assert hidden.status_code == 404
        assert client.get("/v1/tenants", headers=auth(tenant_key)).status_code == 403

    def test_suspend_blocks_its_keys_and_reactivate_restores(
        self,
        client: TestClient,
        admin_key: str,
        tenant: Tenant,
        tenant_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        path = f"/v1/tenants/{tenant.id}"
        suspended = client.patch(path, json={"status": "suspended"}, headers=auth(admin_key))
        assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
        refused = client.get(path, headers=auth(tenant_key))
        assert refused.status_code == 403 and "suspended" in refused.json()["detail"]
        client.patch(
            path, json={"status": "active", "char_quota_per_day": 10}, headers=auth(admin_key)
        )
        assert client.get(path, headers=auth(tenant_key)).json()["char_quota_per_day"] == 10
        updates = _events(session_factory, "tenant.updated")
        assert [e.data for e in updates] == [
            {"status": "suspended"},
            {"char_quota_per_day": 10, "status": "active"},
        ]

    def test_update_unknown_tenant(self, client: TestClient, admin_key: str) -> None:
        response = client.patch(
            "/v1/tenants/ten_nope", json={"status": "suspended"}, headers=auth(admin_key)
        )
        assert response.status_code == 404


class TestKeys:
    def test_secret_shown_once_and_stored_hashed(
        self,
        client: TestClient,
        admin_key: str,
        tenant: Tenant,
        session_factory: sessionmaker[Session],
    ) -> None:
        created = client.post(
            "/v1/keys",
            json={"role": "tenant", "tenant_id": tenant.id, "name": "app"},
            headers=auth(admin_key),
        )
        assert created.status_code == 201, created.text
        body = created.json()
        secret = body["key"]
        assert secret.startswith(body["prefix"] + "_") and secret.startswith("vs_t_")
        # The secret works...
        assert client.get(f"/v1/tenants/{tenant.id}", headers=auth(secret)).status_code == 200
        # ...and appears in no later response, no row and no audit event.
        assert "key" not in client.get(f"/v1/keys/{body['id']}", headers=auth(admin_key)).json()
        listing = client.get("/v1/keys", headers=auth(admin_key)).text
        assert secret not in listing and '"key"' not in listing
        secret_part = secret.split("_", 3)[3]
        with transaction(session_factory) as session:
            row = session.get(ApiKey, body["id"])
            assert row is not None
            assert secret_part not in " ".join(str(v) for v in (row.prefix, row.hash, row.name))
            assert len(row.hash) == 64
            dump = session.execute(text("SELECT * FROM audit_events")).all()
        assert secret_part not in json.dumps([list(map(str, r)) for r in dump])
        [event] = _events(session_factory, "api_key.created")[-1:]
        assert event.subject_id == body["id"] and event.data["role"] == "tenant"

    def test_revoked_key_is_refused(
        self,
        client: TestClient,
        admin_key: str,
        make_key: Any,
        session_factory: sessionmaker[Session],
    ) -> None:
        created = client.post("/v1/keys", json={"role": "auditor"}, headers=auth(admin_key)).json()
        assert client.get("/v1/audit/events", headers=auth(created["key"])).status_code == 200
        revoked = client.post(f"/v1/keys/{created['id']}/revoke", headers=auth(admin_key))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        refused = client.get("/v1/audit/events", headers=auth(created["key"]))
        assert refused.status_code == 401
        again = client.post(f"/v1/keys/{created['id']}/revoke", headers=auth(admin_key))
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
        assert len(_events(session_factory, "api_key.revoked")) == 1
        assert (
            client.get("/v1/keys", headers=auth(admin_key)).json()["data"][0]["id"] != created["id"]
        )
        with_revoked = client.get("/v1/keys?include_revoked=true", headers=auth(admin_key)).json()
        assert created["id"] in {k["id"] for k in with_revoked["data"]}

    def test_last_admin_key_cannot_be_revoked(self, client: TestClient, admin_key: str) -> None:
        [me] = [
            k
            for k in client.get("/v1/keys", headers=auth(admin_key)).json()["data"]
            if k["role"] == "admin"
        ]
        response = client.post(f"/v1/keys/{me['id']}/revoke", headers=auth(admin_key))
        assert response.status_code == 409
        assert "last active admin key" in response.json()["detail"]

    def test_role_and_tenant_must_agree(
        self, client: TestClient, admin_key: str, tenant: Tenant
    ) -> None:
        cases: list[tuple[dict[str, Any], int]] = [
            ({"role": "tenant"}, 422),
            ({"role": "admin", "tenant_id": tenant.id}, 422),
            ({"role": "tenant", "tenant_id": "ten_missing"}, 404),
            ({"role": "root"}, 422),
        ]
        for body, status in cases:
            assert client.post("/v1/keys", json=body, headers=auth(admin_key)).status_code == status

    def test_last_used_at_is_recorded(
        self, client: TestClient, admin_key: str, auditor_key: str
    ) -> None:
        client.get("/v1/audit/events", headers=auth(auditor_key))
        keys = client.get("/v1/keys", headers=auth(admin_key)).json()["data"]
        assert all(k["last_used_at"] is not None for k in keys)

    def test_filter_by_tenant(
        self, client: TestClient, admin_key: str, tenant_key: str, tenant: Tenant
    ) -> None:
        listed = client.get(f"/v1/keys?tenant_id={tenant.id}", headers=auth(admin_key)).json()
        assert [k["tenant_id"] for k in listed["data"]] == [tenant.id]
