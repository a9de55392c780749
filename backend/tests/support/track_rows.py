"""Track-record rows for the API tests, built from the domain types: seeded, varied, and saved through the real
``TrackRecordRepository`` next to published runs (its rows reference ``analysis_runs``)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.domain import Label, LabelOutcome, RunScore, Snapshot, SymbolOutcome, utc_now
from app.storage.publish import publish
from app.storage.track_record import TrackRecordRepository

HOUR = timedelta(hours=1)
HORIZONS = (("1h", 1), ("4h", 4), ("24h", 24))  # the horizons of ``tests.support.snapshots.build_snapshot``
History = list[tuple[RunScore, list[SymbolOutcome]]]


def _maybe(rng: random.Random, value: float, *, none_share: float = 0.1) -> float | None:
    return None if rng.random() < none_share else value


def label_outcomes(rng: random.Random) -> tuple[LabelOutcome, ...]:
    """One run's per-label outcomes: every label, some with no call (count 0, means null)."""
    outcomes = []
    for label in Label:
        count = rng.randint(0, 6)
        defined = count > 0
        outcomes.append(
            LabelOutcome(
                label=label,
                count=count,
                mean_return=rng.gauss(0.0, 0.02) if defined else None,
                mean_excess_log_return=rng.gauss(0.0, 0.01) if defined else None,
                mean_percentile=rng.uniform(0, 100) if defined else None,
                share_beating_median=rng.randint(0, count) / count if defined else None,
            )
        )
    return tuple(outcomes)


def _levels(rng: random.Random) -> tuple[int, int, int]:
    judged = rng.randint(0, 30)
    touched = rng.randint(0, judged)
    return judged, touched, rng.randint(0, touched)


def run_score(
    rng: random.Random, *, run_id: str, exchange: str, horizon: str, candles: int, as_of: datetime, step: timedelta
) -> RunScore:
    """A scored run with seeded figures (an IC or a top-N excess is sometimes undefined, as with few symbols)."""
    judged, touched, bounced = _levels(rng)
    random_judged, random_touched, random_bounced = _levels(rng)
    return RunScore(
        run_id=run_id,
        exchange=exchange,
        horizon=horizon,
        candles=candles,
        as_of=as_of,
        window_end=as_of + candles * step,
        scored_at=utc_now(),  # the scorer's clock: a later save has a later scored_at (the API's version)
        symbols=rng.randint(5, 9),
        excluded={"LUNA/USDT": "gap in the horizon window"} if rng.random() < 0.2 else {},
        ic=_maybe(rng, rng.uniform(-0.4, 0.6)),
        labels=label_outcomes(rng),
        top5_excess=_maybe(rng, rng.gauss(0.0, 0.01)),
        top10_excess=_maybe(rng, rng.gauss(0.0, 0.01), none_share=0.5),
        levels_judged=judged,
        levels_touched=touched,
        levels_bounced=bounced,
        random_ic=_maybe(rng, rng.uniform(-0.5, 0.5)),
        random_labels=label_outcomes(rng),
        random_top5_excess=_maybe(rng, rng.gauss(0.0, 0.01)),
        random_top10_excess=_maybe(rng, rng.gauss(0.0, 0.01), none_share=0.5),
        random_levels_judged=random_judged,
        random_levels_touched=random_touched,
        random_levels_bounced=random_bounced,
    )


def symbol_outcomes(rng: random.Random, score: RunScore, snapshot: Snapshot) -> list[SymbolOutcome]:
    """The run's calls at the score's horizon: the snapshot's symbols with seeded returns."""
    outcomes = []
    for rec in snapshot.recommendations:
        at = rec.scores_by_horizon[score.horizon]
        forward = _maybe(rng, rng.gauss(0.0, 0.03))
        outcomes.append(
            SymbolOutcome(
                run_id=score.run_id,
                exchange=score.exchange,
                horizon=score.horizon,
                symbol=rec.symbol,
                as_of=score.as_of,
                label=at.label,
                score=at.score,
                rank=at.rank,
                probability_outperform=at.probability_outperform,
                forward_return=forward,
                excess_log_return=None if forward is None else forward - 0.001,
                percentile=None if forward is None else rng.uniform(0, 100),
            )
        )
    return outcomes


def scored_history(
    snapshot: Snapshot,
    *,
    runs: int,
    horizons: Sequence[tuple[str, int]] = HORIZONS,
    seed: int = 11,
    last_as_of: datetime | None = None,
) -> History:
    """``runs`` hourly runs, the newest at ``last_as_of`` (default: one hour before ``snapshot``'s), oldest first,
    each scored at every horizon; run ids name their as_of."""
    rng = random.Random(seed)
    last = last_as_of or snapshot.data_as_of - HOUR
    history = []
    for index in range(runs - 1, -1, -1):
        as_of = last - index * HOUR
        run_id = f"run-{as_of:%Y%m%d%H}"
        for horizon, candles in horizons:
            score = run_score(
                rng, run_id=run_id, exchange=snapshot.exchange, horizon=horizon, candles=candles, as_of=as_of, step=HOUR
            )
            history.append((score, symbol_outcomes(rng, score, snapshot)))
    return history


def publish_runs(session_factory: sessionmaker[Session], snapshot: Snapshot, history: History) -> None:
    """Publish one run per run id of ``history`` (``snapshot``'s content at the score's as_of), oldest first."""
    published: set[str] = set()
    for score, _ in history:
        if score.run_id not in published:
            past = dataclasses.replace(snapshot, run_id=score.run_id, data_as_of=score.as_of)
            publish(past, session_factory=session_factory, cache=None)
            published.add(score.run_id)


def save_scores(session_factory: sessionmaker[Session], history: History) -> None:
    """Save every score of ``history`` and its calls, in one commit (the runs must be published)."""
    with session_factory() as session:
        repository = TrackRecordRepository(session)
        for score, outcomes in history:
            repository.save(score, outcomes)
        session.commit()


def save_history(session_factory: sessionmaker[Session], snapshot: Snapshot, history: History) -> None:
    """Publish the runs of ``history``, then save their scores. The newest publish is the current run: publish
    ``snapshot`` itself after this to keep it current."""
    publish_runs(session_factory, snapshot, history)
    save_scores(session_factory, history)
