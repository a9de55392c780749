"""Shared setup for the API tests: a migrated SQLite database, published real-data snapshots, clients, keys,
worker heartbeats."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.api.app import ApiState, create_app
from app.api.ratelimit import WINDOW_S
from app.config import DEVELOPMENT_KEY, Settings
from app.domain import Snapshot, utc_now
from app.storage.api_keys import ApiKeyRepository
from app.storage.cache import MemoryCache
from app.storage.db import make_engine, make_session_factory
from app.storage.heartbeats import HeartbeatRepository
from app.storage.migrate import upgrade
from app.storage.publish import publish
from app.storage.sql import Database as SqlDatabase
from tests.support.storage import engine_database

DEV_AUTH = {"Authorization": f"Bearer {DEVELOPMENT_KEY}"}
EXCHANGES = ["binance", "upbit"]  # upbit is configured but never published to


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app on ``database_url``, no Redis, binance first."""
    values: dict[str, Any] = {"database_url": database_url, "redis_url": None, "exchanges": EXCHANGES}
    return Settings(**{**values, **overrides})


@dataclass
class Database:
    """A migrated SQLite file and a session factory on it."""

    url: str
    session_factory: sessionmaker[Session]
    database: SqlDatabase  # the API's view of the same file (app.storage.sql)

    def publish(self, snapshot: Snapshot, *, cache: MemoryCache | None = None) -> None:
        """Publish ``snapshot`` to the database (and ``cache`` when given)."""
        publish(snapshot, session_factory=self.session_factory, cache=cache)

    def create_key(self, *, name: str = "user-server", rate_limit_per_min: int = 600) -> tuple[str, str]:
        """A new API key: (key_id, secret)."""
        with self.session_factory() as session:
            created = ApiKeyRepository(session).create(name=name, rate_limit_per_min=rate_limit_per_min)
            session.commit()
        return created

    def revoke_key(self, key_id: str) -> None:
        """Revoke ``key_id``."""
        with self.session_factory() as session:
            assert ApiKeyRepository(session).revoke(key_id)
            session.commit()


@contextmanager
def migrated_database(directory: Path) -> Iterator[Database]:
    """A fresh database under ``directory``, migrated with the storage package's migrations."""
    url = f"sqlite:///{directory / 'api.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield Database(url=url, session_factory=make_session_factory(engine), database=engine_database(engine))
    finally:
        engine.dispose()


@contextmanager
def running_client(settings: Settings, *, state: ApiState | None = None) -> Iterator[TestClient]:
    """A client on a new app with its lifespan running; server errors come back as responses."""
    with TestClient(create_app(settings, state=state), raise_server_exceptions=False) as client:
        yield client


def inside_one_rate_window(*, margin_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
    """Wait out an imminent edge of a limiter's one-minute window, so a short burst counts in one (``clock``: the
    in-process limiter's ``time.monotonic``, or Redis's wall clock ``time.time``)."""
    left_s = WINDOW_S - clock() % WINDOW_S
    if left_s < margin_s:
        time.sleep(left_s + 0.05)


def write_heartbeat(db: Database, *, worker_id: str = "worker-a", beat_at: datetime | None = None) -> None:
    """Record a worker heartbeat, as the worker does every ``heartbeat_interval_s``."""
    now = utc_now()
    with db.session_factory() as session:
        HeartbeatRepository(session).beat(
            worker_id=worker_id,
            hostname="test-host",
            pid=4242,
            started_at=now - timedelta(minutes=5),
            state="idle",
            current_run_id=None,
            beat_at=beat_at or now,
        )
        session.commit()


class Breaker:
    """A recording stand-in for the snapshot reader's Redis breaker (what the body stores see): usable until tripped."""

    def __init__(self) -> None:
        self.trips: list[str] = []

    def cache_usable(self) -> bool:
        """True until the first trip."""
        return not self.trips

    def trip_cache(self, reason: str) -> None:
        """Record a trip and its reason."""
        self.trips.append(reason)
