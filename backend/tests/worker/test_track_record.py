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
from sqlalchemy import delete
from structlog.testing import capture_logs

from app.storage.cache import SnapshotCache
from app.storage.models import RunScoreModel
from app.storage.track_record import TrackRecordRepository
from tests.support.candles import copy_replay_pairs
from tests.support.paths import MONITORING_DIR
from tests.support.scoring import SCORED_BASES as BASES
from tests.support.scoring import Deployment
from tests.support.storage import StorageBackend
from tests.support.track_record import differences, recompute, stored_figures

HOUR = timedelta(hours=1)
CYCLES = 10
BOUNCE = 3


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_replay_pairs(tmp_path_factory.mktemp("replay"), BASES)


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
        with capture_logs() as logs:
            result = await deployment.worker.run_scoring("binance", claim=False)
    finally:
        await deployment.close()
    expected = expected_pairs(deployment.runs(), deployment.stored_until())
    scored_events = [e for e in logs if e["event"] == "run_scored"]
    assert [e["run_id"] for e in scored_events] == [run_id for run_id, _ in deployment.runs()[: CYCLES - 1 - BOUNCE]]
    assert set(scored_events[0]["horizons"]) == {"1h", "4h"} and set(scored_events[-1]["horizons"]) == {"1h"}
    (finished,) = [e for e in logs if e["event"] == "scoring_finished"]
    assert (finished["runs"], finished["scores"], finished["not_ready"]) == (CYCLES - 1 - BOUNCE, 9, 0)
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
