"""What a command needs — settings, database transactions, the runtime — opened on demand.

Every command gets one :class:`CliContext` (made by the root callback, closed when the command
ends)::

    @app.command()
    def thing(ctx: typer.Context, as_json: JsonOption = False) -> None:
        cli = get_context(ctx)
        with cli.transaction() as session:       # commits on success, rolls back on error
            ...
        engine = cli.runtime.engine()            # plugins and components, built on first use
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Annotated

import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from voiceseal import notifications
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.kit.db import make_engine, make_sessionmaker, transaction
from voiceseal.runtime import Runtime, build_runtime
from voiceseal.settings import Settings

#: The ``--json`` flag every listing offers.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


class CliContext:
    def __init__(self, settings: Settings | None = None) -> None:
        self._given_settings = settings
        #: ``--debug``: let errors raise with their traceback.
        self.debug = False

    @cached_property
    def settings(self) -> Settings:
        # Read lazily: `voiceseal --help` must work even when the environment is invalid.
        return self._given_settings or Settings()

    @property
    def database_url(self) -> str:
        if self.settings.database_url is None:
            # The default SQLite file lives in the data folder; make sure the folder exists.
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return self.settings.resolved_database_url

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.database_url)

    @cached_property
    def sessionmaker(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with transaction(self.sessionmaker) as session:
            notifications.bind(session, self.runtime.pm)
            yield session

    @cached_property
    def runtime(self) -> Runtime:
        return build_runtime(self.settings)

    @cached_property
    def blobs(self) -> LocalBlobStore:
        return LocalBlobStore(self.settings.resolved_blob_dir)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def get_context(ctx: typer.Context) -> CliContext:
    """The command's context (made by the root callback; made here when a command runs alone)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        root.obj = CliContext()
        root.call_on_close(root.obj.close)
    return root.obj
