"""RunRepository and HeartbeatRepository on SQLite and PostgreSQL, with snapshots built from real candles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.domain import RunStatus, Snapshot
from app.storage.heartbeats import HeartbeatRepository
from app.storage.models import AnalysisRunModel, RecommendationModel
from app.storage.runs import RunNotFoundError, RunRepository
from tests.support.snapshots import SNAPSHOT_AS_OF_MS, MakeSnapshot
from tests.support.storage import StorageBackend

HOUR_MS = 3_600_000


def _save(backend: StorageBackend, snapshot: Snapshot) -> None:
    with backend.session_factory.begin() as session:
        RunRepository(session).save_snapshot(snapshot)


def test_saved_snapshot_comes_back_identical(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(run_id="run-0001")
    with backend.session_factory.begin() as session:
        RunRepository(session).start(run_id="run-0001", exchange="binance", started_at=snapshot.generated_at)
    _save(backend, snapshot)
    with backend.session_factory() as session:
        loaded = RunRepository(session).latest_snapshot(exchange="binance")
    assert loaded == snapshot
    assert loaded is not None and [rec.rank for rec in loaded.recommendations] == list(range(1, 9))  # 8 bundled
    assert loaded.levels["BTC/USDT"].levels[0].sources == ("7d_extreme",)
    assert loaded.errors == {"LUNA/USDT": "no bundled history"} and loaded.universe_size == 9


def test_latest_snapshot_is_the_newest_published_run(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    first = make_snapshot(run_id="run-a")
    second = make_snapshot(run_id="run-b", as_of_ms=SNAPSHOT_AS_OF_MS + HOUR_MS)
    other = make_snapshot(run_id="run-u", exchange="upbit", bases=("BTC", "ETH"))
    _save(backend, first)
    _save(backend, other)
    _save(backend, second)
    with backend.session_factory.begin() as session:
        # A run that started but never published is invisible to readers.
        RunRepository(session).start(run_id="run-c", exchange="binance", started_at=second.generated_at)
    with backend.session_factory() as session:
        runs = RunRepository(session)
        assert runs.latest_snapshot(exchange="binance") == second
        assert runs.latest_snapshot(exchange="upbit") == other
        assert runs.latest_snapshot(exchange="bithumb") is None
        assert runs.latest_run_id(exchange="binance") == "run-b"
        assert runs.latest_run_id(exchange="upbit") == "run-u"
        assert runs.latest_run_id(exchange="bithumb") is None


def test_finish_records_the_outcome(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(run_id="run-f")
    with backend.session_factory.begin() as session:
        runs = RunRepository(session)
        runs.start(run_id="run-f", exchange="binance", started_at=snapshot.generated_at)
        runs.finish(
            run_id="run-f",
            status=RunStatus.FAILED,
            finished_at=snapshot.generated_at + timedelta(seconds=3),
            symbols_total=6,
            symbols_ok=0,
            symbols_failed=6,
            error="exchange unavailable",
            errors={"BTC/USDT": "timeout"},
        )
    with backend.session_factory() as session:
        run = session.get_one(AnalysisRunModel, "run-f")
        assert (run.status, run.symbols_failed, run.error, run.errors) == (
            "failed",
            6,
            "exchange unavailable",
            {"BTC/USDT": "timeout"},
        )
        assert run.finished_at == snapshot.generated_at + timedelta(seconds=3)
        assert run.published_at is None
        with pytest.raises(RunNotFoundError):
            RunRepository(session).finish(
                run_id="nope",
                status=RunStatus.FAILED,
                finished_at=run.started_at,
                symbols_total=0,
                symbols_ok=0,
                symbols_failed=0,
                error=None,
                errors={},
            )


def test_a_rolled_back_save_leaves_nothing(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    with backend.session_factory() as session:
        RunRepository(session).save_snapshot(make_snapshot(run_id="run-r"))
        session.rollback()
    with backend.session_factory() as session:
        assert RunRepository(session).latest_snapshot(exchange="binance") is None
        assert session.execute(select(func.count()).select_from(RecommendationModel)).scalar_one() == 0


def test_heartbeats_upsert_per_worker(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    started_at = make_snapshot(run_id="x").generated_at
    with backend.session_factory.begin() as session:
        beats = HeartbeatRepository(session)
        beats.beat(
            worker_id="w1",
            hostname="h1",
            pid=10,
            started_at=started_at,
            state="idle",
            current_run_id=None,
            beat_at=started_at,
        )
        beats.beat(
            worker_id="w2",
            hostname="h2",
            pid=20,
            started_at=started_at,
            state="idle",
            current_run_id=None,
            beat_at=started_at + timedelta(seconds=1),
        )
    with backend.session_factory.begin() as session:
        HeartbeatRepository(session).beat(
            worker_id="w1",
            hostname="h1",
            pid=10,
            started_at=started_at,
            state="analysing",
            current_run_id="run-9",
            beat_at=started_at + timedelta(seconds=5),
        )
    with backend.session_factory() as session:
        latest = HeartbeatRepository(session).latest()
    assert [(b.worker_id, b.state, b.current_run_id) for b in latest] == [
        ("w1", "analysing", "run-9"),
        ("w2", "idle", None),
    ]
    assert latest[0].last_beat_at == started_at + timedelta(seconds=5)
