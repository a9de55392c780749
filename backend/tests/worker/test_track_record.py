"""The scoring job on both stacks: a worker's published runs over real bundled pairs are scored exactly as an
independent recomputation from the stored candles says, causally (never before the window's last candle is stored),
idempotently, and a crash mid-pass loses and duplicates nothing; the IC gauge and the schedule."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import delete, select

from app.config import Settings
from app.domain import HorizonModel, RunScore, ms_to_datetime
from app.exchange import build_source
from app.storage.cache import SnapshotCache
from app.storage.model_fits import ModelRepository
from app.storage.models import AnalysisRunModel, RunScoreModel, SymbolOutcomeModel
from app.storage.repositories import CandleRepository
from app.storage.track_record import TrackRecordRepository
from app.worker.analysis_options import analysis_options
from app.worker.cycle import ExchangeCycle
from app.worker.service import Worker
from app.worker.track_record import RunScorer
from tests.support.candles import copy_replay_pairs
from tests.support.paths import MONITORING_DIR
from tests.support.storage import StorageBackend
from tests.support.track_record import differences, recompute, stored_figures

BASES = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "LTC")
HOUR = timedelta(hours=1)
CYCLES = 10
BOUNCE = 3


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_replay_pairs(tmp_path_factory.mktemp("replay"), BASES)


def settings_for(backend: StorageBackend, replay_dir: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        database_url=backend.url,
        replay_data_dir=replay_dir,
        replay_warmup_candles=120,
        lookback_candles=200,
        **values,
    )


def store_active_models(backend: StorageBackend, settings: Settings) -> None:
    """Fitted models with labels on (a steep calibration), so the runs serve every label."""
    fitted_at = datetime(2020, 1, 1, tzinfo=UTC)
    models = {
        h.name: HorizonModel(
            horizon=h.name,
            candles=h.candles,
            weights={"reversal_1": 0.5, "low_volatility": 0.5},
            weights_source="fitted",
            fitted_at=fitted_at,
            calibration=((0.0, 0.2), (1.0, 0.8)),
            calibration_samples=1000,
            labels_active=True,
        )
        for h in settings.served_horizons
    }
    with backend.session_factory() as session:
        ModelRepository(session).save(exchange="binance", models=models)
        session.commit()


class Deployment:
    """One replay worker on the test database; ``cycles(n)`` publishes n runs one candle apart."""

    def __init__(self, backend: StorageBackend, replay_dir: Path, cache: SnapshotCache | None = None) -> None:
        self.backend = backend
        self.settings = settings_for(backend, replay_dir)
        store_active_models(backend, self.settings)
        self.source = build_source(self.settings, "binance", resume_from_ms=None)
        self.cycle = ExchangeCycle(
            source=self.source, settings=self.settings, session_factory=backend.session_factory, cache=cache
        )
        self.worker = Worker(
            settings=self.settings, engine=backend.engine, session_factory=backend.session_factory, cycles=[self.cycle]
        )

    async def cycles(self, count: int) -> None:
        for _ in range(count):
            outcome = await self.cycle.run_once()
            assert outcome.symbols_ok == len(BASES)

    def scorer(self, **values: Any) -> RunScorer:
        options = analysis_options(self.settings)
        return RunScorer(exchange="binance", options=options, session_factory=self.backend.session_factory, **values)

    def stored_until(self) -> datetime:
        with self.backend.session_factory() as session:
            latest = CandleRepository(session).latest_open_time_ms(exchange="binance", timeframe="1h")
        assert latest is not None
        return ms_to_datetime(latest) + HOUR

    def runs(self) -> list[tuple[str, datetime]]:
        with self.backend.session_factory() as session:
            rows = session.execute(
                select(AnalysisRunModel.run_id, AnalysisRunModel.data_as_of).order_by(AnalysisRunModel.data_as_of)
            )
            return [(run_id, as_of) for run_id, as_of in rows]

    def scores(self) -> list[RunScore]:
        with self.backend.session_factory() as session:
            repository = TrackRecordRepository(session)
            horizons = [h.name for h in self.settings.served_horizons]
            return [s for h in horizons for s in repository.scores(exchange="binance", horizon=h)]

    def rows(self, *, with_scored_at: bool = True) -> list[tuple[Any, ...]]:
        """Every stored track-record row, as plain tuples in key order."""
        with self.backend.session_factory() as session:
            scores = session.execute(select(RunScoreModel).order_by(RunScoreModel.run_id, RunScoreModel.horizon))
            outcomes = session.execute(
                select(SymbolOutcomeModel).order_by(
                    SymbolOutcomeModel.run_id, SymbolOutcomeModel.horizon, SymbolOutcomeModel.symbol
                )
            )
            skip = set() if with_scored_at else {"scored_at"}
            return [
                tuple(getattr(row, c.key) for c in row.__table__.columns if c.key not in skip)
                for row in [*scores.scalars(), *outcomes.scalars()]
            ]

    async def close(self) -> None:
        await self.source.close()


@pytest.fixture
def deployment_factory(replay_dir: Path) -> Callable[..., Deployment]:
    def make(backend: StorageBackend, cache: SnapshotCache | None = None) -> Deployment:
        return Deployment(backend, replay_dir, cache)

    return make


def expected_pairs(runs: list[tuple[str, datetime]], stored_until: datetime) -> set[tuple[str, str]]:
    """(run, horizon) whose window's last candle (h + 3 after the entry) closed by ``stored_until``."""
    return {
        (run_id, name)
        for run_id, as_of in runs
        for name, candles in (("1h", 1), ("4h", 4), ("24h", 24))
        if as_of + (candles + BOUNCE) * HOUR <= stored_until
    }


async def test_a_worker_scores_its_runs_as_the_independent_recomputation_does(
    backend: StorageBackend, cache: SnapshotCache, deployment_factory: Any
) -> None:
    deployment = deployment_factory(backend, cache)
    try:
        await deployment.cycles(CYCLES)
        result = await deployment.worker.run_scoring("binance", claim=False)
    finally:
        await deployment.close()
    expected = expected_pairs(deployment.runs(), deployment.stored_until())
    scores = deployment.scores()
    assert {(s.run_id, s.horizon) for s in scores} == expected and len(expected) == 9
    assert result is not None and (result.runs, result.scores) == (CYCLES - 1 - BOUNCE, len(expected))
    labels = {o.label for s in scores for o in s.labels if o.count}
    assert len(labels) >= 3, f"the stored models should serve several labels, not {labels}"
    assert all(s.levels_judged > 0 and s.symbols == len(BASES) and not s.excluded for s in scores)
    for score in scores:
        again = recompute(backend.engine, score.run_id, score.horizon, candles=score.candles)
        assert differences(stored_figures(score), again) == [], (score.run_id, score.horizon)


async def test_a_horizon_is_scored_only_once_its_last_candle_is_stored(
    backend: StorageBackend, deployment_factory: Any
) -> None:
    deployment = deployment_factory(backend)
    try:
        await deployment.cycles(BOUNCE + 1)  # the first run's 1h window ends with the fourth run's candle
        before = deployment.scorer().score_pending()
        await deployment.cycles(1)
        after = deployment.scorer().score_pending()
    finally:
        await deployment.close()
    first_run = deployment.runs()[0][0]
    assert (before.runs, before.scores) == (0, 0)
    assert (after.runs, after.scores) == (1, 1)
    assert {(s.run_id, s.horizon) for s in deployment.scores()} == {(first_run, "1h")}


async def test_scoring_twice_changes_nothing(backend: StorageBackend, deployment_factory: Any) -> None:
    deployment = deployment_factory(backend)
    try:
        await deployment.cycles(8)
    finally:
        await deployment.close()
    first = deployment.scorer().score_pending()
    rows = deployment.rows()
    again = deployment.scorer().score_pending()
    assert first.scores > 0 and (again.runs, again.scores) == (0, 0)
    for score in deployment.scores():  # even an explicit rescore writes the same rows, scored_at included
        with backend.session_factory() as session:
            TrackRecordRepository(session).save(dataclasses.replace(score, scored_at=datetime.now(UTC)), [])
            session.commit()
    assert deployment.rows() == rows


class CrashError(RuntimeError):
    """The simulated crash."""


async def test_a_crash_mid_pass_loses_and_duplicates_nothing(backend: StorageBackend, deployment_factory: Any) -> None:
    deployment = deployment_factory(backend)
    try:
        await deployment.cycles(CYCLES)
    finally:
        await deployment.close()
    deployment.scorer().score_pending()
    reference = deployment.rows(with_scored_at=False)
    with backend.session_factory() as session:
        session.execute(delete(RunScoreModel))
        session.commit()
    calls = iter(range(100))

    def crashing_clock() -> datetime:
        if next(calls) == 5:  # runs 1-3 are scored at 1h then 4h: the crash hits the third run's second horizon
            raise CrashError("killed")
        return datetime.now(UTC)

    with pytest.raises(CrashError):
        deployment.scorer(clock=crashing_clock).score_pending()
    committed = {(s.run_id, s.horizon) for s in deployment.scores()}
    runs = [run_id for run_id, _ in deployment.runs()]
    assert committed == {(runs[0], "1h"), (runs[0], "4h"), (runs[1], "1h"), (runs[1], "4h")}
    resumed = deployment.scorer().score_pending()
    assert resumed.runs == CYCLES - 1 - BOUNCE - 2
    assert deployment.rows(with_scored_at=False) == reference


async def test_the_gauge_shows_the_newest_realised_ic(backend: StorageBackend, deployment_factory: Any) -> None:
    deployment = deployment_factory(backend)
    try:
        await deployment.cycles(CYCLES)
        await deployment.worker.run_scoring("binance", claim=False)
    finally:
        await deployment.close()
    exposition = generate_latest(REGISTRY).decode()
    newest = max((s for s in deployment.scores() if s.horizon == "1h"), key=lambda s: s.as_of)
    line = f'dantaro_track_record_latest_ic{{exchange="binance",horizon="1h"}} {newest.ic!r}'
    assert newest.ic is not None and line in exposition.splitlines()
    monitored = (MONITORING_DIR / "alerts.yml").read_text() + (
        MONITORING_DIR / "grafana" / "dantaro-central.json"
    ).read_text()
    assert "dantaro_track_record_latest_ic" in monitored


async def test_the_scoring_job_runs_every_analysis_interval(backend: StorageBackend, deployment_factory: Any) -> None:
    deployment = deployment_factory(backend)
    scheduler = AsyncIOScheduler(timezone="UTC")
    deployment.worker.install_jobs(scheduler)
    await deployment.close()
    job = scheduler.get_job("score:binance")
    interval_s = deployment.settings.analysis_interval_s
    assert job is not None and job.trigger.interval.total_seconds() == interval_s
    assert job.trigger.start_date.timestamp() % interval_s == interval_s / 2  # half an interval after the cycles
