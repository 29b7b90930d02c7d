"""The FastAPI application factory.

``create_app()`` wires settings, the runtime (plugin manager and components), routers, error
handlers and metrics; the lifespan opens the database engine and the blob store and closes them
at shutdown. Nothing is created at import time, so any number of apps (tests, workers) can live
in one process. The schema is not created here: run ``voiceseal db upgrade`` first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import anyio
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import voiceseal
from voiceseal.api import problems
from voiceseal.api.metrics import Metrics, MetricsMiddleware
from voiceseal.api.routers import (
    CORE_ROUTERS,
    DOMAIN_ROUTERS,
    check_route_roles,
    load_router,
    mount_plugin_routes,
)
from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.kit.db import make_engine, make_sessionmaker
from voiceseal.runtime import Runtime, build_runtime
from voiceseal.settings import Settings

log = logging.getLogger(__name__)


class State(TypedDict):
    """What every request sees as ``request.state`` (read it through ``voiceseal.api.deps``)."""

    settings: Settings
    runtime: Runtime
    engine: Engine
    sessionmaker: sessionmaker[Session]
    blobs: LocalBlobStore
    metrics: Metrics


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or Settings()
    # Built here rather than in the lifespan: plugin routes must be mounted before start-up.
    # A runtime holds no connections or threads (components are built on first use).
    # An app that builds its runtime owns it and closes its components at shutdown (an
    # engine's serving threads and queued requests); a runtime passed in is its caller's.
    owns_runtime = runtime is None
    runtime = runtime or build_runtime(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        try:
            yield State(
                settings=settings,
                runtime=runtime,
                engine=engine,
                sessionmaker=make_sessionmaker(engine),
                blobs=LocalBlobStore(settings.resolved_blob_dir),
                metrics=metrics,
            )
        finally:
            # Components first: requests they cancel may still record their failure.
            if owns_runtime:
                await anyio.to_thread.run_sync(runtime.components.close)
            engine.dispose()

    app = FastAPI(
        title="VoiceSeal",
        version=voiceseal.__version__,
        summary="Consented voice cloning with a watermark registry.",
        lifespan=lifespan,
    )
    problems.install(app)
    for target in CORE_ROUTERS:
        router = load_router(target, optional=False)
        assert router is not None
        app.include_router(router)
    for target in DOMAIN_ROUTERS:
        if (router := load_router(target, optional=True)) is not None:
            app.include_router(router)
    mount_plugin_routes(app, runtime)
    check_route_roles(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
