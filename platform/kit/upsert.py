"""``INSERT … ON CONFLICT`` for the two supported backends (both spell it the same way)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_on_conflict(session: Session, model: Any) -> postgresql.Insert | sqlite.Insert:
    """An insert for ``model`` that offers ``on_conflict_do_update/nothing`` on this session's
    database (SQLite >= 3.35 and PostgreSQL; RETURNING works on both)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"INSERT … ON CONFLICT needs SQLite or PostgreSQL, not {dialect}")
