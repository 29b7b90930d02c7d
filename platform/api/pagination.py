"""Cursor pagination for every listing: ``{"data": [...], "next_cursor": ..., "has_more": bool}``.

Keyset, not offset: the cursor holds the sort-key values of the last row served (base64url JSON,
opaque to clients), so pages stay stable while rows are being inserted and each page costs one
index range scan however deep the client goes.

Use it in an endpoint::

    @router.get("/v1/things", response_model=Page[ThingPublic])
    def list_things(*, session: SessionDep, page: PageParamsDep, _: AdminDep) -> Page[ThingPublic]:
        stmt = select(Thing).where(...)
        found = paginate(session, stmt, keys=(Thing.created_at, Thing.id), params=page)
        return Page[ThingPublic].build(found, ThingPublic.model_validate)

Rows come newest first (descending on every key); the last key must be unique (an id or a seq).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from voiceseal.errors import InvalidInput

MAX_LIMIT = 100
DEFAULT_LIMIT = 20

M = TypeVar("M")
P = TypeVar("P")


@dataclass(frozen=True)
class PageParams:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageParamsDep = Annotated[PageParams, Depends(page_params)]


@dataclass(frozen=True)
class Slice(Generic[M]):
    """One page of ORM rows plus where the next one starts."""

    items: list[M]
    next_cursor: str | None
    has_more: bool


class Page(BaseModel, Generic[P]):
    data: list[P]
    next_cursor: str | None
    has_more: bool

    @classmethod
    def build(cls, found: Slice[Any], convert: Callable[[Any], P]) -> Page[P]:
        return cls(
            data=[convert(row) for row in found.items],
            next_cursor=found.next_cursor,
            has_more=found.has_more,
        )


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if value is None or isinstance(value, int | str):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def _decode_value(raw: Any) -> Any:
    if isinstance(raw, dict) and set(raw) == {"t"} and isinstance(raw["t"], str):
        return datetime.fromisoformat(raw["t"])
    if raw is None or isinstance(raw, int | str):
        return raw
    raise ValueError("unexpected value")


def encode_cursor(values: Sequence[Any]) -> str:
    text = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(raw, list) or len(raw) != width:
            raise ValueError("wrong shape")
        return [_decode_value(v) for v in raw]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "the cursor is not valid: pass back `next_cursor` from the previous page unchanged",
            param="cursor",
        ) from None


def _after(
    keys: Sequence[InstrumentedAttribute[Any]], values: Sequence[Any]
) -> ColumnElement[bool]:
    # Descending keyset: (k1, k2, ...) < (v1, v2, ...) spelled out, so each bind takes its column's
    # type (UTC datetimes on SQLite are stored as text and must be bound the same way).
    clauses: list[ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        equal_prefix = [keys[j] == values[j] for j in range(i)]
        clauses.append(and_(*equal_prefix, key < values[i]))
    return or_(*clauses)


def paginate(
    session: Session,
    stmt: Select[M],
    *,
    keys: Sequence[InstrumentedAttribute[Any]],
    params: PageParams,
) -> Slice[M]:
    """Run ``stmt`` for one page, newest first by ``keys`` (the last key must be unique)."""
    if not keys:
        raise ValueError("paginate needs at least one sort key")
    if params.cursor is not None:
        stmt = stmt.where(_after(keys, decode_cursor(params.cursor, len(keys))))
    stmt = stmt.order_by(*(k.desc() for k in keys)).limit(params.limit + 1)
    rows = list(session.scalars(stmt).all())
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = None
    if has_more:
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, k.key) for k in keys])
    return Slice(items=rows, next_cursor=next_cursor, has_more=has_more)
