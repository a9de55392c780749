"""Retention on SQLite and PostgreSQL: old runs (not the newest published) with their rows and track record, candles
beyond the window, claims."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.config import Settings
from app.domain import timeframe_ms, utc_now
from app.storage.leases import claim_slot
from app.storage.models import (
    AnalysisRunModel,
    CandleModel,
    JobClaimModel,
    RecommendationModel,
    RunScoreModel,
    SupportLevelsModel,
    SymbolOutcomeModel,
)
from app.storage.repositories import CandleRepository, RunRepository
from app.storage.retention import RetentionPolicy, apply_retention, candle_keep_ms
from app.storage.track_record import TrackRecordRepository
from app.worker.service import Worker
from tests.storage.test_track_record import sample_outcomes as track_outcomes
from tests.storage.test_track_record import sample_score as track_score
from tests.support.candles import bundled_candles
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend

HOUR_MS = timeframe_ms("1h")
DAY_MS = timeframe_ms("1d")


def _count(backend: StorageBackend, model: type, *where: object) -> int:
    with backend.session_factory() as session:
        return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())  # type: ignore[arg-type]


def _seed(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    now = utc_now()
    with backend.session_factory() as session:
        runs = RunRepository(session)
        for index, (run_id, age_days, publish) in enumerate(
            [("old-published-a", 50, True), ("old-failed", 45, False), ("old-published-b", 40, True)]
        ):
            runs.start(run_id=run_id, exchange="binance", started_at=now - timedelta(days=age_days))
            if publish:
                runs.save_snapshot(
                    make_snapshot(run_id=run_id), published_at=now - timedelta(days=age_days, minutes=-index)
                )
        runs.start(run_id="recent", exchange="binance", started_at=now - timedelta(days=1))
        runs.start(run_id="upbit-old", exchange="upbit", started_at=now - timedelta(days=60))
        runs.save_snapshot(make_snapshot(run_id="upbit-old", exchange="upbit"), published_at=now - timedelta(days=60))
        candles = CandleRepository(session)
        candles.upsert(
            exchange="binance", symbol="BTC/USDT", timeframe="1h", candles=bundled_candles("BTC", "1h")[-300:]
        )
        candles.upsert(
            exchange="binance", symbol="ETH/USDT", timeframe="1h", candles=bundled_candles("ETH", "1h")[-300:]
        )
        candles.upsert(
            exchange="binance", symbol="BTC/USDT", timeframe="1d", candles=bundled_candles("BTC", "1d")[-500:]
        )
        for slot in range(12):
            claim_slot(
                session, job="cycle:binance", slot=slot, holder="h:1", claimed_at=now - timedelta(days=slot * 5 + 2)
            )
        session.commit()


def test_retention_prunes_in_batches_and_keeps_what_is_served(
    backend: StorageBackend,
    make_snapshot: MakeSnapshot,
) -> None:
    _seed(backend, make_snapshot)
    newest_1h = bundled_candles("BTC", "1h")[-1].open_time_ms
    newest_1d = bundled_candles("BTC", "1d")[-1].open_time_ms
    policy = RetentionPolicy(
        runs_before=utc_now() - timedelta(days=30),
        claims_before=utc_now() - timedelta(days=30),
        candle_keep_ms=candle_keep_ms(timeframes=["1h", "1d"], lookback_candles=100, retention_days=4),
        batch_rows=7 * 100,  # 7 runs, 700 candles, 700 claims per statement: several batches of candles
    )
    result = apply_retention(backend.session_factory, policy)
    with backend.session_factory() as session:
        kept_runs = set(session.execute(select(AnalysisRunModel.run_id)).scalars())
    assert kept_runs == {"old-published-b", "recent", "upbit-old"}  # newest published per exchange survives
    assert result.runs == 2
    assert _count(backend, RecommendationModel, RecommendationModel.run_id == "old-published-a") == 0  # cascaded
    assert _count(backend, SupportLevelsModel, SupportLevelsModel.run_id == "old-published-a") == 0
    assert _count(backend, SupportLevelsModel, SupportLevelsModel.run_id == "old-published-b") > 0
    # 1h: the 100-candle lookback (> 4 days) is kept, measured from the newest stored candle
    cutoff_1h = newest_1h + HOUR_MS - 100 * HOUR_MS
    assert _count(backend, CandleModel, CandleModel.timeframe == "1h") == 2 * 100
    assert _count(backend, CandleModel, CandleModel.timeframe == "1h", CandleModel.open_time_ms < cutoff_1h) == 0
    assert _count(backend, CandleModel, CandleModel.timeframe == "1d") == 100
    assert _count(backend, CandleModel, CandleModel.timeframe == "1d", CandleModel.open_time_ms == newest_1d) == 1
    assert result.candles == 2 * 200 + 400
    assert result.claims == 6 and _count(backend, JobClaimModel) == 6  # claimed 2..27 days ago survive
    assert apply_retention(backend.session_factory, policy).candles == 0  # idempotent


def test_candle_window_is_the_larger_of_lookback_and_retention() -> None:
    keep = candle_keep_ms(timeframes=["1h", "1d"], lookback_candles=500, retention_days=400)
    assert keep == {"1h": 400 * DAY_MS, "1d": 500 * DAY_MS}


def test_candle_window_keeps_the_refits_history() -> None:
    keep = candle_keep_ms(
        timeframes=["1h", "1d"], lookback_candles=500, retention_days=30, history_candles={"1h": 1664}
    )
    assert keep == {"1h": 1664 * DAY_MS // 24, "1d": 500 * DAY_MS}


def test_worker_retention_keeps_the_refits_history(backend: StorageBackend) -> None:
    settings = Settings(_env_file=None, database_url=backend.url, candle_retention_days=10, fit_window_days=90)
    worker = Worker(settings=settings, engine=backend.engine, session_factory=backend.session_factory, cycles=[])
    keep = worker.retention_policy().candle_keep_ms
    assert keep == {"1h": (90 * 24 + 24 + 200) * DAY_MS // 24, "1d": 500 * DAY_MS}  # fit window + horizon + warm-up


async def test_worker_retention_runs_once_per_slot(
    backend: StorageBackend,
    make_snapshot: MakeSnapshot,
) -> None:
    _seed(backend, make_snapshot)
    settings = Settings(_env_file=None, database_url=backend.url, retention_days=30, candle_retention_days=400)
    workers = [
        Worker(settings=settings, engine=backend.engine, session_factory=backend.session_factory, cycles=[])
        for _ in range(2)
    ]
    first = await workers[0].run_retention()
    assert first is not None and first.runs == 2 and first.candles == 0  # 300 h and 500 d are within 400 days
    assert await workers[1].run_retention() is None  # same daily slot: already run
    with backend.session_factory() as session:
        jobs = session.execute(select(JobClaimModel.job).where(JobClaimModel.job == "retention")).scalars().all()
    assert jobs == ["retention"]


def test_retention_deletes_the_track_record_of_the_runs_it_deletes(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    _seed(backend, make_snapshot)
    with backend.session_factory() as session:
        for run_id in ("old-published-a", "old-published-b"):
            run = make_snapshot(run_id=run_id)
            for horizon in ("1h", "4h"):
                TrackRecordRepository(session).save(track_score(run, horizon), track_outcomes(run, horizon))
        session.commit()
    policy = RetentionPolicy(
        runs_before=utc_now() - timedelta(days=30),
        claims_before=utc_now() - timedelta(days=30),
        candle_keep_ms=candle_keep_ms(timeframes=["1h", "1d"], lookback_candles=100, retention_days=4),
    )
    assert apply_retention(backend.session_factory, policy).runs == 2
    with backend.session_factory() as session:
        scored = {
            (run_id, horizon)
            for run_id, horizon in session.execute(select(RunScoreModel.run_id, RunScoreModel.horizon))
        }
        outcomes = set(session.execute(select(SymbolOutcomeModel.run_id)).scalars())
    assert scored == {("old-published-b", "1h"), ("old-published-b", "4h")}
    assert outcomes == {"old-published-b"}
