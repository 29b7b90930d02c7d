"""``Idempotency-Key`` for creating POSTs: a retried request replays the first one's response.

Per API key, a key names one request. The first request with it reserves the key in the same
transaction as its work and stores its response there; so either both the work and the stored
response are committed, or neither is (a failed request can be retried with the same key).
A repeat with the same body gets the stored status, content type and body back, without the work
being done again, and the header ``Idempotent-Replayed: true``; a repeat with a different body or
on another route is refused (422 ``idempotency_key_reused``); a repeat that arrives while the
first is still running waits for it (the reservation is a unique row) and then replays it.
Records are kept for :data:`RETENTION`.

The body is compared by content, not bytes: JSON canonically (key order and spacing do not
matter) and forms field by field with files by SHA-256, because a client library retrying a
multipart upload picks a new boundary each time.

Use it in an endpoint that creates something::

    @router.post("/v1/things", status_code=201, response_model=ThingPublic)
    def create_thing(*, body: ThingCreate, session: SessionDep, principal: AdminDep,
                     idem: IdempotencyDep) -> Response:
        if (replay := idem.begin(session)) is not None:
            return replay
        thing = service.create(session, body, actor_key_id=principal.api_key_id)
        return idem.respond(session, ThingPublic.model_validate(thing), status_code=201)

For a non-JSON response build it yourself and pass it through ``idem.finish(session, response)``.
Streamed responses cannot be stored: refuse the header on those or stream without it.

Work too long to hold one transaction (speech synthesis) uses :meth:`Idempotency.reserve`, which
commits the reservation on its own, then :meth:`~Idempotency.complete` with the response, or
:meth:`~Idempotency.release` when the work failed (a retry then does it again). A repeat that
arrives meanwhile is answered 409 at once; a reservation left behind by a process that died is
taken over after :data:`STALE_AFTER`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

from voiceseal.api.deps import current_principal
from voiceseal.errors import Conflict, InvalidInput
from voiceseal.kit.db import transaction
from voiceseal.kit.upsert import insert_on_conflict
from voiceseal.registry.base import utcnow
from voiceseal.registry.models import IdempotencyRecord

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
#: A reservation of :meth:`Idempotency.reserve` still open after this is taken to be abandoned.
STALE_AFTER = timedelta(minutes=15)
_FILE_CHUNK = 1 << 20


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


async def _body_digest(request: Request) -> str:
    h = hashlib.sha256()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in {"multipart/form-data", "application/x-www-form-urlencoded"}:
        # FastAPI has parsed the form already (and caches it on the request).
        form = await request.form()
        for name, value in sorted(form.multi_items(), key=lambda kv: kv[0]):
            h.update(b"\x00field\x00" + name.encode() + b"\x00")
            if isinstance(value, UploadFile):
                fh = hashlib.sha256()
                await value.seek(0)
                while chunk := await value.read(_FILE_CHUNK):
                    fh.update(chunk)
                await value.seek(0)
                meta = f"{value.filename or ''}\x00{value.content_type or ''}\x00{fh.hexdigest()}"
                h.update(b"file\x00" + meta.encode())
            else:
                h.update(b"text\x00" + value.encode())
        return h.hexdigest()
    raw = await request.body()
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = raw
    h.update(b"\x00body\x00" + canonical)
    return h.hexdigest()


class Idempotency:
    """One request's idempotency state; see the module docstring for the calling pattern."""

    def __init__(self, request: Request, key: str | None, request_sha256: str) -> None:
        self.request = request
        self.key = key
        self.request_sha256 = request_sha256
        self.method_path = f"{request.method} {request.url.path}"
        self._record_id: int | None = None

    def _api_key_id(self) -> str:
        principal = current_principal(self.request)
        if principal is None:
            raise RuntimeError("Idempotency-Key needs a route with a role guard (an API key)")
        return principal.api_key_id

    def _find(self, session: Session, api_key_id: str) -> IdempotencyRecord | None:
        return session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == self.key
            )
        ).first()

    def _replay(self, record: IdempotencyRecord) -> Response:
        if record.request_sha256 != self.request_sha256 or record.method_path != self.method_path:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {self.key!r} was first used for a different request "
                f"({record.method_path}); use a new key for a new request",
                param=HEADER,
            )
        if record.status_code == 0:
            raise Conflict(f"the request with Idempotency-Key {self.key!r} is still in progress")
        return Response(
            content=record.body,
            status_code=record.status_code,
            media_type=record.content_type,
            headers={**(record.headers or {}), "Idempotent-Replayed": "true"},
        )

    def begin(self, session: Session) -> Response | None:
        """The stored response to replay, or None after reserving the key for this request."""
        if self.key is None:
            return None
        api_key_id = self._api_key_id()
        now = utcnow()
        if (found := self._find(session, api_key_id)) is not None:
            if found.status_code != 0 or found.created_at >= now - STALE_AFTER:
                return self._replay(found)
            # Reserved by `reserve` and never completed nor released: its process died.
            session.delete(found)
            session.flush()
        # A concurrent first use holds the unique row: this waits for it, then inserts nothing.
        reserved = session.execute(
            insert_on_conflict(session, IdempotencyRecord)
            .values(
                api_key_id=api_key_id,
                key=self.key,
                method_path=self.method_path,
                request_sha256=self.request_sha256,
                status_code=0,
                content_type="",
                body=b"",
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
            .returning(IdempotencyRecord.id)
        ).scalar_one_or_none()
        if reserved is None:
            found = self._find(session, api_key_id)
            if found is None:  # the other request rolled back between the two statements
                raise Conflict(f"the request with Idempotency-Key {self.key!r} is in progress")
            return self._replay(found)
        self._record_id = int(reserved)
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == api_key_id,
                IdempotencyRecord.created_at < now - RETENTION,
            )
        )
        return None

    def finish(
        self, session: Session, response: Response, *, replay_headers: tuple[str, ...] = ()
    ) -> Response:
        """Store ``response`` for replays (in the request's transaction) and return it; the
        headers named in ``replay_headers`` are stored and replayed with it."""
        if self._record_id is not None:
            session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.id == self._record_id)
                .values(
                    status_code=response.status_code,
                    content_type=response.media_type or response.headers.get("content-type", ""),
                    body=bytes(response.body),
                    headers={
                        h: response.headers[h] for h in replay_headers if h in response.headers
                    }
                    or None,
                )
            )
        return response

    # -- work longer than a transaction --------------------------------------------------------

    def reserve(self, sessions: sessionmaker[Session]) -> Response | None:
        """:meth:`begin` in a transaction of its own, committed at once (see the module
        docstring): the stored response to replay, or None with the key reserved."""
        with transaction(sessions) as session:
            return self.begin(session)

    def complete(
        self,
        sessions: sessionmaker[Session],
        response: Response,
        *,
        replay_headers: tuple[str, ...] = (),
    ) -> Response:
        """Store the response of reserved work for replays and return it."""
        with transaction(sessions) as session:
            return self.finish(session, response, replay_headers=replay_headers)

    def release(self, sessions: sessionmaker[Session]) -> None:
        """The reserved work failed: drop the reservation, so that a retry does the work."""
        if self._record_id is None:
            return
        with transaction(sessions) as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.id == self._record_id, IdempotencyRecord.status_code == 0
                )
            )
        self._record_id = None

    def respond(self, session: Session, content: Any, *, status_code: int = 200) -> Response:
        """A JSON response of ``content`` (a pydantic model or JSON-able value), stored for replay."""
        data = (
            content.model_dump(mode="json")
            if isinstance(content, BaseModel)
            else (jsonable_encoder(content))
        )
        return self.finish(session, JSONResponse(data, status_code=status_code))


async def get_idempotency(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=200,
            description="Makes a retried create safe: the same key replays the first result.",
        ),
    ] = None,
) -> Idempotency:
    digest = await _body_digest(request) if idempotency_key is not None else ""
    return Idempotency(request, idempotency_key, digest)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
