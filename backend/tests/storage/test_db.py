"""Engines, SQLite pragmas and the UTC datetime column type, on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from app.storage.db import make_engine
from app.storage.heartbeats import HeartbeatRepository
from tests.support.storage import StorageBackend


def test_sqlite_engine_creates_parent_dir_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "dantaro.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            journal = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            foreign_keys = connection.execute(text("PRAGMA foreign_keys")).scalar_one()
            busy_timeout_ms = connection.execute(text("PRAGMA busy_timeout")).scalar_one()
    finally:
        engine.dispose()
    assert path.exists()
    assert (journal, foreign_keys, busy_timeout_ms) == ("wal", 1, 5000)


def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        make_engine("mysql://user@localhost/db")


def test_datetimes_round_trip_as_aware_utc(backend: StorageBackend) -> None:
    seoul = timezone(timedelta(hours=9))
    started_at = datetime(2022, 10, 1, 9, 30, 15, 123456, tzinfo=seoul)
    beat_at = datetime(2022, 10, 1, 0, 31, 0, 654321, tzinfo=UTC)
    with backend.session_factory.begin() as session:
        HeartbeatRepository(session).beat(
            worker_id="w1",
            hostname="host",
            pid=42,
            started_at=started_at,
            state="idle",
            current_run_id=None,
            beat_at=beat_at,
        )
    with backend.session_factory() as session:
        (row,) = HeartbeatRepository(session).latest()
    assert row.started_at == started_at
    assert row.started_at.utcoffset() == timedelta(0)
    assert row.started_at.hour == 0 and row.started_at.microsecond == 123456
    assert row.last_beat_at == beat_at and row.last_beat_at.tzinfo is not None


def test_naive_datetimes_are_rejected(backend: StorageBackend) -> None:
    with backend.session_factory() as session, pytest.raises(StatementError, match="naive datetime"):
        HeartbeatRepository(session).beat(
            worker_id="w1",
            hostname="host",
            pid=1,
            started_at=datetime(2022, 1, 1),
            state="idle",
            current_run_id=None,
        )


def test_a_new_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dantaro.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        engine.dispose()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    assert modes[path.name] == 0o600, modes
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes  # the WAL files too
