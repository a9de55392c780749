"""TrackRecordRepository on SQLite and PostgreSQL: scores and outcomes round-trip exactly, saving is idempotent,
pages are stable, windows are inclusive, and the rows go with their run (ON DELETE CASCADE)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from app.domain import Label, LabelOutcome, RunScore, Snapshot, SymbolOutcome
from app.storage.models import AnalysisRunModel, RunScoreModel, SymbolOutcomeModel
from app.storage.runs import RunRepository
from app.storage.track_record import InvalidCursorError, TrackRecordRepository, page_cursor, parse_cursor
from tests.storage.test_row_mapping import column_problems
from tests.support.snapshots import SNAPSHOT_AS_OF_MS, MakeSnapshot
from tests.support.storage import StorageBackend

HOUR = timedelta(hours=1)
SCORED_AT = datetime(2022, 10, 2, tzinfo=UTC)


def sample_score(snapshot: Snapshot, horizon: str = "1h", *, ic: float | None = 0.12) -> RunScore:
    labels = (
        LabelOutcome(Label.BUY, 2, 0.01, 0.004, 62.5, 0.5),
        LabelOutcome(Label.SELL, 0, None, None, None, None),
    )
    return RunScore(
        run_id=snapshot.run_id,
        exchange=snapshot.exchange,
        horizon=horizon,
        candles=int(horizon.rstrip("h")),
        as_of=snapshot.data_as_of,
        window_end=snapshot.data_as_of + int(horizon.rstrip("h")) * HOUR,
        scored_at=SCORED_AT,
        symbols=7,
        excluded={"LUNA/USDT": "no candles after the run"},
        ic=ic,
        labels=labels,
        top5_excess=0.002,
        top10_excess=None,
        levels_judged=12,
        levels_touched=5,
        levels_bounced=2,
        random_ic=-0.03,
        random_labels=labels[::-1],
        random_top5_excess=-0.001,
        random_top10_excess=None,
        random_levels_judged=12,
        random_levels_touched=4,
        random_levels_bounced=1,
    )


def sample_outcomes(snapshot: Snapshot, horizon: str = "1h") -> list[SymbolOutcome]:
    return [
        SymbolOutcome(
            run_id=snapshot.run_id,
            exchange=snapshot.exchange,
            horizon=horizon,
            symbol=item.symbol,
            as_of=snapshot.data_as_of,
            label=item.label,
            score=item.total_score,
            rank=item.rank,
            probability_outperform=None if item.rank == 1 else 0.5,
            forward_return=None if item.rank == 2 else 0.01 * item.rank,
            excess_log_return=None if item.rank == 2 else 0.001,
            percentile=None if item.rank == 2 else 50.0,
        )
        for item in snapshot.recommendations
    ]


def _publish(backend: StorageBackend, *snapshots: Snapshot) -> None:
    with backend.session_factory() as session:
        for snapshot in snapshots:
            RunRepository(session).save_snapshot(snapshot)
        session.commit()


def _save(backend: StorageBackend, score: RunScore, outcomes: list[SymbolOutcome]) -> None:
    with backend.session_factory() as session:
        TrackRecordRepository(session).save(score, outcomes)
        session.commit()


def _runs(make_snapshot: MakeSnapshot, count: int, *, exchange: str = "binance") -> list[Snapshot]:
    return [
        make_snapshot(run_id=f"run{i:02d}", exchange=exchange, as_of_ms=SNAPSHOT_AS_OF_MS + i * 3_600_000)
        for i in range(count)
    ]


def test_every_field_has_its_column() -> None:
    assert column_problems(RunScore, RunScoreModel) == []
    assert column_problems(SymbolOutcome, SymbolOutcomeModel) == []


def test_scores_and_outcomes_read_back_exactly(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    (run,) = _runs(make_snapshot, 1)
    _publish(backend, run)
    score, outcomes = sample_score(run), sample_outcomes(run)
    _save(backend, score, outcomes)
    _save(backend, sample_score(run, "4h"), sample_outcomes(run, "4h"))
    with backend.session_factory() as session:
        repository = TrackRecordRepository(session)
        assert repository.scores(exchange="binance", horizon="1h") == [score]
        assert repository.scored_run_ids(exchange="binance", horizon="4h") == {run.run_id}
        assert repository.scored_run_ids(exchange="upbit", horizon="1h") == set()
        symbol = outcomes[0].symbol
        assert repository.symbol_outcomes(exchange="binance", symbol=symbol, horizon="1h") == [outcomes[0]]
        assert repository.latest_scored_at(exchange="binance") == SCORED_AT
        assert repository.latest_scored_at(exchange="upbit") is None


def test_a_rescore_with_the_same_result_changes_nothing(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    (run,) = _runs(make_snapshot, 1)
    _publish(backend, run)
    _save(backend, sample_score(run), sample_outcomes(run))
    later = SCORED_AT + timedelta(days=1)
    _save(backend, replace(sample_score(run), scored_at=later), sample_outcomes(run))
    with backend.session_factory() as session:
        repository = TrackRecordRepository(session)
        assert repository.scores(exchange="binance", horizon="1h") == [sample_score(run)]
        assert repository.latest_scored_at(exchange="binance") == SCORED_AT
        count = session.execute(select(func.count()).select_from(SymbolOutcomeModel)).scalar_one()
        assert count == len(run.recommendations)


def test_a_different_result_replaces_the_score_and_its_outcomes(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    (run,) = _runs(make_snapshot, 1)
    _publish(backend, run)
    _save(backend, sample_score(run), sample_outcomes(run))
    later = SCORED_AT + timedelta(days=1)
    changed = replace(sample_score(run, ic=None), scored_at=later)
    _save(backend, changed, sample_outcomes(run)[:2])
    with backend.session_factory() as session:
        repository = TrackRecordRepository(session)
        assert repository.scores(exchange="binance", horizon="1h") == [changed]
        assert repository.latest_scored_at(exchange="binance") == later
        count = session.execute(select(func.count()).select_from(SymbolOutcomeModel)).scalar_one()
        assert count == 2


def test_windows_are_inclusive_and_oldest_first(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    runs = _runs(make_snapshot, 4)
    _publish(backend, *runs)
    for run in reversed(runs):
        _save(backend, sample_score(run), [])
    with backend.session_factory() as session:
        repository = TrackRecordRepository(session)
        everything = repository.scores(exchange="binance", horizon="1h")
        assert [s.run_id for s in everything] == ["run00", "run01", "run02", "run03"]
        window = repository.scores(exchange="binance", horizon="1h", since=runs[1].data_as_of, until=runs[2].data_as_of)
        assert [s.run_id for s in window] == ["run01", "run02"]
        assert repository.scores(exchange="binance", horizon="4h") == []


def test_pages_run_newest_first_and_stay_stable(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    runs = _runs(make_snapshot, 5)
    twin = make_snapshot(run_id="run02b", exchange="binance", as_of_ms=SNAPSHOT_AS_OF_MS + 2 * 3_600_000)
    _publish(backend, *runs[:4], twin)
    for run in [*runs[:4], twin]:
        _save(backend, sample_score(run), [])
    with backend.session_factory() as session:
        repository = TrackRecordRepository(session)
        first = repository.page(exchange="binance", horizon="1h", limit=2)
        assert [s.run_id for s in first] == ["run03", "run02b"]
        _publish(backend, runs[4])
        _save(backend, sample_score(runs[4]), [])
        second = repository.page(exchange="binance", horizon="1h", limit=2, before=page_cursor(first[-1]))
        assert [s.run_id for s in second] == ["run02", "run01"]
        last = repository.page(exchange="binance", horizon="1h", limit=2, before=page_cursor(second[-1]))
        assert [s.run_id for s in last] == ["run00"]
        assert repository.page(exchange="binance", horizon="1h", limit=2, before=page_cursor(last[-1])) == []


def test_a_cursor_round_trips_and_a_forged_one_is_rejected(make_snapshot: MakeSnapshot) -> None:
    (run,) = _runs(make_snapshot, 1)
    cursor = page_cursor(sample_score(run))
    assert parse_cursor(cursor) == (run.data_as_of, run.run_id)
    assert cursor.isascii() and "/" not in cursor and "+" not in cursor and "=" not in cursor
    for forged in ("", "abc", "bm90LWEtY3Vyc29y", "%%%", "MTIzOg", "LTE6cnVu"):
        with pytest.raises(InvalidCursorError):
            parse_cursor(forged)


def test_scores_are_deleted_with_their_run(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    first, second = _runs(make_snapshot, 2)
    _publish(backend, first, second)
    for run in (first, second):
        _save(backend, sample_score(run), sample_outcomes(run))
    with backend.session_factory() as session:
        session.execute(delete(AnalysisRunModel).where(AnalysisRunModel.run_id == first.run_id))
        session.commit()
    with backend.session_factory() as session:
        assert TrackRecordRepository(session).scored_run_ids(exchange="binance", horizon="1h") == {second.run_id}
        run_ids = set(session.execute(select(SymbolOutcomeModel.run_id)).scalars())
        assert run_ids == {second.run_id}
