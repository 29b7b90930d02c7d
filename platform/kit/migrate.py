"""Run the Alembic migrations programmatically (the CLI's ``db`` commands and the test fixtures).

Alembic is the only way the schema is made. The environment lives in the source tree
(``alembic.ini`` and ``migrations/`` beside ``platform/``), so this needs a source checkout or an
editable install.
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

import voiceseal
from voiceseal.errors import Unavailable

ROOT = Path(voiceseal.__file__).resolve().parent.parent


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    ini = ROOT / "alembic.ini"
    if not ini.is_file():
        raise Unavailable(
            f"no alembic.ini at {ini}: migrations need a source checkout of voiceseal"
        )
    # Alembic's own chatter ("No new upgrade operations detected.") is not for our users.
    config = Config(str(ini), stdout=io.StringIO())
    # Keep the caller's logging (the CLI's, pytest's) instead of alembic.ini's handlers.
    config.attributes["configure_logger"] = False
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise if the database is behind ``head`` or the models differ from the migrations."""
    command.check(alembic_config(url))


def head() -> str | None:
    """The newest revision the migrations define."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(url: str) -> str | None:
    """The database's revision (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
