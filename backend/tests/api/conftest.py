"""Fixtures of the API tests: a snapshot of real prices published to the migrated SQLite ``database``, the
settings of an app on it, and a client of that app with its lifespan running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain import Snapshot
from app.storage.publish import publish
from tests.support.api import Database, make_settings, running_client
from tests.support.snapshots import build_snapshot
from tests.support.storage import StorageBackend
from tests.support.track_rows import History, save_history, scored_history


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


@pytest.fixture(scope="module")
def track_run() -> Snapshot:
    """The current run of the track-record tests (binance, 1h/4h/24h, default 24h)."""
    return build_snapshot(run_id="run-current")


@pytest.fixture(scope="module")
def track_history(track_run: Snapshot) -> History:
    """36 hourly runs before ``track_run``, each scored at 1h, 4h and 24h, with its symbols' calls."""
    return scored_history(track_run, runs=36)


@pytest.fixture
def track_db(backend: StorageBackend, track_run: Snapshot, track_history: History) -> StorageBackend:
    """``backend`` (SQLite, PostgreSQL) with ``track_history`` saved, then ``track_run`` published (the current)."""
    save_history(backend.session_factory, track_run, track_history)
    publish(track_run, session_factory=backend.session_factory, cache=None)
    return backend
