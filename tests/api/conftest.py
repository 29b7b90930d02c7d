"""API-test helpers: apps with throwaway plugins, and settings pointing at a dead database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from voiceseal.api.app import create_app
from voiceseal.runtime import build_runtime
from voiceseal.settings import Settings

PluginClient = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def plugin_client(settings: Settings) -> PluginClient:
    """``with plugin_client(Plugin(), ...) as client:`` an app whose runtime also has these
    plugins registered (beside the entry-point ones), lifespan running, server errors returned
    as responses instead of raised."""

    @contextmanager
    def open_client(*plugins: Any) -> Iterator[TestClient]:
        runtime = build_runtime(settings, extra_plugins=list(plugins))
        app = create_app(settings, runtime=runtime)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    return open_client


@pytest.fixture
def unreachable_settings(settings: Settings) -> Settings:
    """The same settings with a database that cannot be opened (same backend kind)."""
    if settings.resolved_database_url.startswith("sqlite"):
        url = f"sqlite:///{settings.data_dir}/no/such/folder/registry.db"
    else:
        # Port 1 on loopback: nothing listens there, so the connection is refused at once.
        url = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    return settings.model_copy(update={"database_url": url})
