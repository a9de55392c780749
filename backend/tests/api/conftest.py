"""Fixtures of the API tests: a snapshot of real prices published to the migrated SQLite ``database``, the
settings of an app on it, and a client of that app with its lifespan running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain import Snapshot
from tests.support.api import Database, make_settings, running_client
from tests.support.snapshots import build_snapshot


@pytest.fixture
def snapshot(database: Database) -> Snapshot:
    """The snapshot published to ``database`` (binance)."""
    published = build_snapshot()
    database.publish(published)
    return published


@pytest.fixture
def published(database: Database, snapshot: Snapshot) -> Database:
    """``database`` once ``snapshot`` is published to it."""
    return database


@pytest.fixture
def api_settings(database: Database) -> Settings:
    """Settings of an app on ``database`` (a module may override them)."""
    return make_settings(database.url)


@pytest.fixture
def client(api_settings: Settings, snapshot: Snapshot) -> Iterator[TestClient]:
    """A client of an app on ``api_settings`` serving ``snapshot``."""
    with running_client(api_settings) as test_client:
        yield test_client
