"""Idempotency-Key: a retried create replays the first response; a reused key is refused."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

import voiceseal
from voiceseal.api.deps import AdminDep, SessionDep
from voiceseal.api.idempotency import IdempotencyDep
from voiceseal.api.routers import PLUGIN_PREFIX
from voiceseal.kit.db import transaction
from voiceseal.registry.models import AuditEvent, IdempotencyRecord, Tenant


def headers(admin_key: str, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}", "Idempotency-Key": key}


def _count(factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with transaction(factory) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class UploadPlugin:
    """A multipart creating route, like voice and consent registration."""

    @voiceseal.hookimpl
    def register_routes(self, router: APIRouter) -> None:
        @router.post("/uploads", status_code=201)
        def upload(
            *,
            name: Annotated[str, Form()],
            clip: Annotated[UploadFile, File()],
            session: SessionDep,
            principal: AdminDep,
            idem: IdempotencyDep,
        ) -> Response:
            if (replay := idem.begin(session)) is not None:
                return replay
            data = clip.file.read()
            return idem.finish(
                session,
                Response(
                    content=name.encode() + b":" + data[:8],
                    status_code=201,
                    media_type="text/plain",
                ),
            )


def test_replay_returns_the_first_response_without_redoing_work(
    client: TestClient,
    admin_key: str,
    session_factory: sessionmaker[Session],
) -> None:
    first = client.post(
        "/v1/tenants",
        json={"name": "initech", "char_quota_per_day": 5},
        headers=headers(admin_key, "create-initech"),
    )
    # Same content, different key order and spacing: the same request.
    again = client.post(
        "/v1/tenants",
        content=b'{ "char_quota_per_day": 5,  "name": "initech" }',
        headers={**headers(admin_key, "create-initech"), "content-type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _count(session_factory, Tenant) == 1
    assert _count(session_factory, AuditEvent, AuditEvent.action == "tenant.created") == 1


def test_same_key_different_body_is_refused(
    client: TestClient, admin_key: str, session_factory: sessionmaker[Session]
) -> None:
    client.post("/v1/tenants", json={"name": "a"}, headers=headers(admin_key, "k1"))
    reused = client.post("/v1/tenants", json={"name": "b"}, headers=headers(admin_key, "k1"))
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert reused.json()["title"] == "Idempotency-Key reused with a different request"
    other_route = client.post(
        "/v1/keys", json={"role": "auditor"}, headers=headers(admin_key, "k1")
    )
    assert other_route.status_code == 422
    assert _count(session_factory, Tenant) == 1


def test_keys_are_per_api_key(
    client: TestClient, admin_key: str, make_key: Any, session_factory: sessionmaker[Session]
) -> None:
    other_admin = make_key("admin")
    client.post("/v1/tenants", json={"name": "one"}, headers=headers(admin_key, "same"))
    second = client.post("/v1/tenants", json={"name": "two"}, headers=headers(other_admin, "same"))
    assert second.status_code == 201
    assert _count(session_factory, IdempotencyRecord) == 2


def test_a_failed_request_does_not_keep_the_key(
    client: TestClient, admin_key: str, tenant: Tenant
) -> None:
    failed = client.post("/v1/tenants", json={"name": tenant.name}, headers=headers(admin_key, "k"))
    assert failed.status_code == 409
    retried = client.post("/v1/tenants", json={"name": "fresh"}, headers=headers(admin_key, "k"))
    assert retried.status_code == 201


def test_key_creation_replays_the_same_secret(client: TestClient, admin_key: str) -> None:
    first = client.post("/v1/keys", json={"role": "auditor"}, headers=headers(admin_key, "mk"))
    again = client.post("/v1/keys", json={"role": "auditor"}, headers=headers(admin_key, "mk"))
    assert first.json()["key"] == again.json()["key"]
    listed = client.get("/v1/keys", headers={"Authorization": f"Bearer {admin_key}"}).json()
    assert [k["role"] for k in listed["data"]].count("auditor") == 1


def test_without_the_header_nothing_is_stored(
    client: TestClient, admin_key: str, session_factory: sessionmaker[Session]
) -> None:
    auth = {"Authorization": f"Bearer {admin_key}"}
    client.post("/v1/tenants", json={"name": "x"}, headers=auth)
    client.post("/v1/tenants", json={"name": "y"}, headers=auth)
    assert _count(session_factory, IdempotencyRecord) == 0
    too_long = client.post("/v1/tenants", json={"name": "z"}, headers=headers(admin_key, "k" * 201))
    assert too_long.status_code == 422


def test_multipart_bodies_compare_by_content(plugin_client: Any, admin_key: str) -> None:
    url = f"{PLUGIN_PREFIX}/uploads"
    with plugin_client(UploadPlugin()) as client:

        def send(name: str, data: bytes, key: str = "up") -> Any:
            # The client picks a new multipart boundary for every request.
            return client.post(
                url,
                data={"name": name},
                files={"clip": ("a.wav", data, "audio/wav")},
                headers=headers(admin_key, key),
            )

        first = send("n", b"RIFF1234data")
        again = send("n", b"RIFF1234data")
        changed_file = send("n", b"RIFF9999data")
        changed_field = send("m", b"RIFF1234data")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content == b"n:RIFF1234"
    assert again.headers["content-type"].startswith("text/plain")
    assert again.headers["idempotent-replayed"] == "true"
    assert changed_file.status_code == changed_field.status_code == 422


def test_concurrent_first_uses_do_the_work_once(
    client: TestClient, admin_key: str, session_factory: sessionmaker[Session]
) -> None:
    import threading

    answers: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        response = client.post(
            "/v1/tenants", json={"name": "raced"}, headers=headers(admin_key, "race")
        )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Later arrivals wait for the first and replay it; none does the work a second time.
    assert sorted(a.status_code for a in answers) == [201] * 4
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 3
    assert _count(session_factory, Tenant) == 1
