"""The worker's refit on the replay source over a few real pairs, on SQLite + in-process cache and PostgreSQL + Redis.

Checks what a user of the served models relies on: the first cycle of a fresh database fits before it analyses,
``model_fits`` holds one model per horizon and every run serves (and records) exactly those, a restart reuses them,
pinned weights are stored as ``configured``, too little history serves the prior with HOLD labels and says so,
the fit never reads a candle stored after its ``now``, a failed refit keeps the previous models, an old model is
served with a stale note, and two workers fit a refit slot once. Small fit windows keep the fits quick.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from structlog.testing import capture_logs

from app.config import Settings
from app.domain import HorizonModel, Label, RunStatus, Snapshot, ms_to_datetime, timeframe_ms
from app.exchange import build_source
from app.storage.cache import SnapshotCache
from app.storage.model_fits import ModelRepository
from app.storage.reader import SnapshotReader
from app.storage.repositories import CandleRepository
from app.worker.analysis_options import analysis_options
from app.worker.cycle import ExchangeCycle
from app.worker.job_gate import refit_interval_wall_s
from app.worker.refit import ModelRefit
from app.worker.service import Worker
from tests.support.candles import bundled_candles, copy_replay_pairs
from tests.support.storage import StorageBackend

BASES = ("BTC", "ETH", "SOL", "XRP", "ADA", "BNB")
HOUR_MS = timeframe_ms("1h")


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_replay_pairs(tmp_path_factory.mktemp("replay"), BASES)


def _settings(backend: StorageBackend, replay_dir: Path, **values: Any) -> Settings:
    """An 8-day fit window (416 candles of history) and a warm-up that covers it."""
    defaults: dict[str, Any] = {
        "replay_warmup_candles": 480,
        "lookback_candles": 200,
        "fit_window_days": 8,
        "fit_min_days": 4,
    }
    return Settings(_env_file=None, database_url=backend.url, replay_data_dir=replay_dir, **{**defaults, **values})


class Deployment:
    """Worker processes on one database, each with its own replay source (closed by ``close``)."""

    def __init__(self, settings: Settings, backend: StorageBackend, cache: SnapshotCache | None = None) -> None:
        self.settings, self.backend, self.cache = settings, backend, cache
        self.cycles: list[ExchangeCycle] = []

    def worker(self) -> Worker:
        """A new worker process (as after a restart: the replay resumes at the stored candles)."""
        with self.backend.session_factory() as session:
            latest = CandleRepository(session).latest_open_time_ms(exchange="binance", timeframe="1h")
        source = build_source(self.settings, "binance", resume_from_ms=None if latest is None else latest + HOUR_MS)
        cycle = ExchangeCycle(
            source=source, settings=self.settings, session_factory=self.backend.session_factory, cache=self.cache
        )
        self.cycles.append(cycle)
        return Worker(
            settings=self.settings,
            engine=self.backend.engine,
            session_factory=self.backend.session_factory,
            cycles=[cycle],
        )

    def stored(self) -> dict[str, HorizonModel]:
        with self.backend.session_factory() as session:
            return ModelRepository(session).load(exchange="binance")

    def served(self, *, use_cache: bool = True) -> Snapshot:
        reader = SnapshotReader(database=self.backend.database, cache=self.cache)
        served = reader.get("binance", use_cache=use_cache)
        assert served is not None
        return served[0]

    async def close(self) -> None:
        for cycle in self.cycles:
            await cycle.source.close()


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in logs if event["event"] == name]


async def test_first_cycle_fits_stores_and_serves_the_models(
    backend: StorageBackend, cache: SnapshotCache, replay_dir: Path
) -> None:
    settings = _settings(backend, replay_dir)
    options = analysis_options(settings)
    deployment = Deployment(settings, backend, cache)
    try:
        worker = deployment.worker()
        with capture_logs() as logs:
            first = await worker.run_cycle("binance", claim=False)
            served_first = deployment.served()
            second = await worker.run_cycle("binance", claim=False)
    finally:
        await deployment.close()
    assert first is not None and second is not None
    assert (first.status, second.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    (refit,) = _events(logs, "refit_finished")  # the start refit, inside the first cycle; none in the second
    assert refit["trigger"] == "start: no usable stored model for 1h, 4h, 24h" and refit["symbols"] == len(BASES)
    now_ms = _events(logs, "run_finished")[0]["now_ms"]
    stored = deployment.stored()
    assert set(stored) == {h.name for h in options.horizons}
    for horizon in options.horizons:
        model = stored[horizon.name]
        assert (model.weights_source, model.candles) == ("fitted", horizon.candles)
        assert model.fitted_at == ms_to_datetime(now_ms)
        assert model.cross_sections == options.fit.window_candles
        # The newest cross-section whose forward return had closed at now, and the window before it.
        assert model.fit_end == ms_to_datetime(now_ms - (horizon.candles + 1) * HOUR_MS)
        assert model.fit_start == model.fit_end - timedelta(hours=options.fit.window_candles - 1)
        assert model.walk_forward_ic is not None and model.walk_forward_t is not None
        assert refit["horizons"][horizon.name]["walk_forward_ic"] == model.walk_forward_ic
    assert served_first.models == stored and deployment.served().models == stored
    assert deployment.served(use_cache=False).models == stored  # the run row records the models it served


async def test_a_restarted_worker_reuses_the_stored_models(backend: StorageBackend, replay_dir: Path) -> None:
    deployment = Deployment(_settings(backend, replay_dir), backend)
    try:
        await deployment.worker().run_cycle("binance", claim=False)
        stored = deployment.stored()
        with capture_logs() as logs:
            restarted = await deployment.worker().run_cycle("binance", claim=False)
    finally:
        await deployment.close()
    assert restarted is not None and restarted.status is RunStatus.SUCCEEDED
    assert not _events(logs, "refit_finished")
    assert [e["reason"] for e in _events(logs, "refit_skipped")] == ["the stored models are current"]
    assert deployment.stored() == stored and deployment.served().models == stored


async def test_pinned_weights_are_measured_and_stored_as_configured(backend: StorageBackend, replay_dir: Path) -> None:
    deployment = Deployment(_settings(backend, replay_dir, factor_weights={"rsi": 3, "reversal_1": 1}), backend)
    try:
        await deployment.worker().run_cycle("binance", claim=False)
    finally:
        await deployment.close()
    stored = deployment.stored()
    assert {m.weights_source for m in stored.values()} == {"configured"}
    for model in stored.values():
        assert {n: w for n, w in model.weights.items() if w} == {"rsi": 0.75, "reversal_1": 0.25}
        assert model.walk_forward_ic is not None  # measured like a fit
    assert deployment.served().models == stored


async def test_too_little_history_serves_the_prior_with_hold_labels(backend: StorageBackend, replay_dir: Path) -> None:
    settings = _settings(backend, replay_dir, replay_warmup_candles=120, fit_min_days=10, fit_window_days=12)
    deployment = Deployment(settings, backend)
    try:
        outcome = await deployment.worker().run_cycle("binance", claim=False)
    finally:
        await deployment.close()
    assert outcome is not None and outcome.status is RunStatus.SUCCEEDED
    stored = deployment.stored()
    assert {(m.weights_source, m.labels_active) for m in stored.values()} == {("prior", False)}
    assert all("240 are needed to fit; prior weights used" in m.note for m in stored.values())
    snapshot = deployment.served()
    assert snapshot.models == stored  # the run says why its labels are HOLD
    assert {r.label for r in snapshot.recommendations} == {Label.HOLD}
    assert {s.label for r in snapshot.recommendations for s in r.scores_by_horizon.values()} == {Label.HOLD}


def _store_bundled(backend: StorageBackend, *, start: int, end: int) -> None:
    with backend.session_factory() as session:
        repository = CandleRepository(session)
        for base in BASES:
            candles = bundled_candles(base, "1h")[start:end]
            repository.upsert(exchange="binance", symbol=f"{base}/USDT", timeframe="1h", candles=candles)
        session.commit()


def test_candles_stored_after_now_do_not_change_the_fit(backend: StorageBackend, replay_dir: Path) -> None:
    options = analysis_options(_settings(backend, replay_dir))
    refit = ModelRefit(exchange="binance", options=options, session_factory=backend.session_factory)
    symbols = [f"{base}/USDT" for base in BASES]
    _store_bundled(backend, start=0, end=500)
    now_ms = bundled_candles("BTC", "1h")[499].open_time_ms + HOUR_MS
    before = refit.run(symbols=symbols, now_ms=now_ms)
    _store_bundled(backend, start=500, end=560)  # 60 more hours, all closing after now
    after = refit.run(symbols=symbols, now_ms=now_ms)
    later = refit.run(symbols=symbols, now_ms=now_ms + 60 * HOUR_MS)
    assert before is not None and after is not None and later is not None
    assert after.models == before.models
    assert all(later.models[h].fit_end != before.models[h].fit_end for h in before.models)  # the read sees them


async def test_a_failed_refit_keeps_the_previous_models(backend: StorageBackend, replay_dir: Path) -> None:
    deployment = Deployment(_settings(backend, replay_dir), backend)
    try:
        worker = deployment.worker()
        await worker.run_cycle("binance", claim=False)
        stored = deployment.stored()
        refitter = deployment.cycles[0].refitter
        with capture_logs() as logs:
            failed = await asyncio.to_thread(refitter.run, symbols=["LUNA/USDT"], now_ms=2**41)
            after = await worker.run_cycle("binance", claim=False)
    finally:
        await deployment.close()
    assert failed is None
    (event,) = _events(logs, "refit_failed")
    assert event["error"] == "ValueError: no stored 1h candles to fit on"
    assert after is not None and after.status is RunStatus.SUCCEEDED
    assert deployment.stored() == stored and deployment.served().models == stored


async def test_a_model_three_refit_intervals_old_is_served_as_stale(backend: StorageBackend, replay_dir: Path) -> None:
    deployment = Deployment(_settings(backend, replay_dir, refit_interval_s=3600), backend)  # one replayed hour
    try:
        worker = deployment.worker()
        for _ in range(4):  # the replay clock moves one hour per cycle; only the first cycle fits
            await worker.run_cycle("binance", claim=False)
        fresh = deployment.served().models
        await worker.run_cycle("binance", claim=False)
    finally:
        await deployment.close()
    stored = deployment.stored()
    assert fresh == stored  # 3 hours old: not stale yet
    stale = deployment.served().models
    assert {n: m.weights for n, m in stale.items()} == {n: m.weights for n, m in stored.items()}
    assert all(m.note.endswith("4 h before this run (more than 3 refit intervals)") for m in stale.values())


async def test_two_workers_fit_a_refit_slot_once(backend: StorageBackend, replay_dir: Path) -> None:
    deployment = Deployment(_settings(backend, replay_dir), backend)
    try:
        first, second = deployment.worker(), deployment.worker()
        with capture_logs() as logs:
            await first.run_cycle("binance", claim=False)  # fits at its start
            await second.run_cycle("binance", claim=False)  # its start refit finds the models current
            results = await asyncio.gather(first.run_refit("binance"), second.run_refit("binance"))
            again = await first.run_refit("binance")  # the same slot
    finally:
        await deployment.close()
    assert sum(result is not None for result in results) == 1 and again is None
    assert [e["trigger"] for e in _events(logs, "refit_finished")] == [
        "start: no usable stored model for 1h, 4h, 24h",
        "scheduled",
    ]


async def test_first_collection_fetches_the_refits_history(backend: StorageBackend, replay_dir: Path) -> None:
    settings = _settings(backend, replay_dir, lookback_candles=100)
    deployment = Deployment(settings, backend)
    try:
        await deployment.worker().run_cycle("binance", claim=False)
    finally:
        await deployment.close()
    with backend.session_factory() as session:
        repository = CandleRepository(session)
        hourly = repository.load(exchange="binance", timeframe="1h", symbols=["BTC/USDT"], until_ms=2**42, limit=10**4)
        daily = repository.load(exchange="binance", timeframe="1d", symbols=["BTC/USDT"], until_ms=2**42, limit=10**4)
    assert len(hourly["BTC/USDT"]) == analysis_options(settings).history_candles == 8 * 24 + 24 + 200
    assert len(daily["BTC/USDT"]) == 100


async def test_the_refit_job_is_scheduled_per_exchange(backend: StorageBackend, replay_dir: Path) -> None:
    settings = _settings(backend, replay_dir, analysis_interval_s=30)
    deployment = Deployment(settings, backend)
    scheduler = AsyncIOScheduler(timezone="UTC")
    deployment.worker().install_jobs(scheduler)
    await deployment.close()
    job = scheduler.get_job("refit:binance")
    assert job is not None and job.trigger.interval.total_seconds() == refit_interval_wall_s(settings) == 720
