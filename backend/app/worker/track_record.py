"""Scoring published runs against the candles stored after them (the job ``score:<exchange>``, the backfill).

Invariants:
- Causal: a run is scored at horizon h only from stored candles, once its whole window is stored: every analysed
  symbol has the last candle of the window (``h + BOUNCE_CANDLES`` candles after the entry; see
  ``app.analysis.track_record``), or a later candle of the run's timeframe is stored for the exchange (then the
  symbols still without it have a gap and are excluded). Never before: an unready pair is left for a later pass.
- Oldest first (by ``data_as_of``, run id), keyset-paged ``page_runs`` runs at a time; all ready horizons of one
  run are saved in one transaction, committed on their own: a crash loses at most the run in flight, which the
  next pass scores again (``unscored`` reads what was committed). Saving is idempotent
  (``TrackRecordRepository.save``), so scoring twice changes nothing.
- A pair that can never be scored (the run does not serve that horizon: published before it was configured) is
  remembered for the life of the scorer and logged once as ``run_not_scorable``.
- ``backfill_track_record`` (``dantaro track-record backfill``) runs the same scorer over every run already stored,
  without a time budget, with a progress bar (plain lines when not on a terminal); it is idempotent too.
- Each scored run is logged as ``run_scored`` (run id, exchange, as_of, per horizon the IC and symbols scored).
Times: ``*_ms`` epoch milliseconds; ``*_s`` seconds (monotonic for budgets).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import TextIO

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.analysis.options import AnalysisOptions
from app.analysis.track_record import ATR_HISTORY_CANDLES, RunWindow, score_run, window_candles
from app.config import Settings
from app.domain import Candle, Horizon, RunScore, Snapshot, ms_to_datetime, timeframe_ms, utc_now
from app.storage.db import make_engine, make_session_factory
from app.storage.migrate import require_head
from app.storage.repositories import CandleRepository, RunRepository
from app.storage.track_record import PendingScore, TrackRecordRepository
from app.worker.analysis_options import analysis_options
from app.worker.backfill import Progress as ProgressBar

log = structlog.get_logger(__name__)

PAGE_RUNS = 200
PLAIN_PROGRESS_STEPS = 20  # without a terminal, one progress line per 5% of the runs
Progress = Callable[[int], None]  # called with the number of runs handled so far, after each run


@dataclass(slots=True)
class ScoringPass:
    """What one pass did: runs and (run, horizon) scores written, pairs not ready yet, the newest score per
    horizon after the pass (for the IC gauge)."""

    runs: int = 0
    scores: int = 0
    not_ready: int = 0
    latest: dict[str, RunScore] = field(default_factory=dict)


class RunScorer:
    """Scores one exchange's published runs (see the module docstring)."""

    def __init__(
        self,
        *,
        exchange: str,
        options: AnalysisOptions,
        session_factory: sessionmaker[Session],
        clock: Callable[[], datetime] = utc_now,
        page_runs: int = PAGE_RUNS,
    ) -> None:
        self.exchange = exchange
        self.options = options
        self.session_factory = session_factory
        self.clock = clock
        self.page_runs = page_runs
        self._not_scorable: set[tuple[str, str]] = set()

    def score_pending(self, *, budget_s: float | None = None, progress: Progress | None = None) -> ScoringPass:
        """Score every ready unscored (run, horizon), oldest first, until done or ``budget_s`` has passed."""
        started = time.monotonic()
        result = ScoringPass()
        after: tuple[datetime, str] | None = None
        handled = 0

        def in_budget() -> bool:
            return budget_s is None or time.monotonic() - started < budget_s

        while in_budget() and (runs := self._next_runs(after)):
            for run_id, pairs in runs:
                if not in_budget():
                    break
                self._score_one(run_id, [p.horizon for p in pairs], result)
                after, handled = (pairs[0].as_of, run_id), handled + 1
                if progress is not None:
                    progress(handled)
        result.latest = self.latest_scores()
        return result

    def latest_scores(self) -> dict[str, RunScore]:
        """The newest stored score of each served horizon (the realised IC the gauge shows)."""
        with self.session_factory() as session:
            repository = TrackRecordRepository(session)
            pages = {h.name: repository.page(exchange=self.exchange, horizon=h.name, limit=1) for h in self._horizons}
        return {name: page[0] for name, page in pages.items() if page}

    def pending_runs(self) -> int:
        """How many published runs have a horizon whose window has closed in the store and no score yet."""
        with self.session_factory() as session:
            pending = self._unscored(session, after=None, limit=None)
        return len({p.run_id for p in pending if (p.run_id, p.horizon) not in self._not_scorable})

    @property
    def _horizons(self) -> tuple[Horizon, ...]:
        return self.options.horizons

    def _next_runs(self, after: tuple[datetime, str] | None) -> list[tuple[str, list[PendingScore]]]:
        """The next page of runs with unscored pairs (a run's pairs never split across pages)."""
        limit = self.page_runs * len(self._horizons)
        with self.session_factory() as session:
            pending = self._unscored(session, after=after, limit=limit)
        full = len(pending) == limit
        pairs = [p for p in pending if (p.run_id, p.horizon) not in self._not_scorable]
        runs = [(run_id, list(group)) for run_id, group in groupby(pairs, key=lambda p: p.run_id)]
        if full and len(runs) > 1 and pending[-1].run_id == runs[-1][0]:
            runs.pop()  # its other horizons may be on the next page
        if full and not runs and pending:  # every pair of the page is known unscorable: page past it
            return self._next_runs((pending[-1].as_of, pending[-1].run_id))
        return runs

    def _unscored(
        self, session: Session, *, after: tuple[datetime, str] | None, limit: int | None
    ) -> list[PendingScore]:
        repository = CandleRepository(session)
        step_ms = self.options.candle_ms
        latest_ms = repository.latest_open_time_ms(exchange=self.exchange, timeframe=self.options.analysis_timeframe)
        if latest_ms is None:
            return []
        stored_until = ms_to_datetime(latest_ms + step_ms)
        ready_until = {
            h.name: stored_until - timedelta(milliseconds=window_candles(h) * step_ms) for h in self._horizons
        }
        return TrackRecordRepository(session).unscored(
            exchange=self.exchange, ready_until=ready_until, after=after, limit=limit
        )

    def _score_one(self, run_id: str, horizons: Sequence[str], result: ScoringPass) -> None:
        """Score the run's ready horizons in one transaction."""
        with self.session_factory() as session:
            snapshot = RunRepository(session).published_snapshot(run_id=run_id)
            if snapshot is None:  # deleted by retention since it was listed
                return
            scores = []
            for name in horizons:
                horizon = self._served(snapshot, name)
                window = None if horizon is None else self._window(session, snapshot, horizon)
                if window is None:
                    result.not_ready += 0 if horizon is None else 1
                    continue
                score, outcomes = score_run(window, scored_at=self.clock())
                TrackRecordRepository(session).save(score, outcomes)
                scores.append(score)
            session.commit()
        if scores:
            result.runs += 1
            result.scores += len(scores)
            _log_scored(snapshot, scores)

    def _served(self, snapshot: Snapshot, name: str) -> Horizon | None:
        """The horizon as the run served it; None (remembered, logged once) when the run did not serve it."""
        model = snapshot.models.get(name)
        if model is not None and all(name in r.scores_by_horizon for r in snapshot.recommendations):
            return Horizon(name=name, candles=model.candles)
        self._not_scorable.add((snapshot.run_id, name))
        log.info(
            "run_not_scorable",
            run_id=snapshot.run_id,
            exchange=self.exchange,
            horizon=name,
            reason="the run does not serve this horizon",
        )
        return None

    def _window(self, session: Session, snapshot: Snapshot, horizon: Horizon) -> RunWindow | None:
        """The candles scoring reads, or None while the window is not wholly stored."""
        step_ms = timeframe_ms(snapshot.timeframe)
        reach_open_ms = _as_of_ms(snapshot) - step_ms + window_candles(horizon) * step_ms
        repository = CandleRepository(session)
        symbols = [r.symbol for r in snapshot.recommendations]
        candles = repository.load(
            exchange=self.exchange,
            timeframe=snapshot.timeframe,
            symbols=symbols,
            until_ms=reach_open_ms + step_ms,
            limit=ATR_HISTORY_CANDLES + window_candles(horizon) + 1,
        )
        if not _window_stored(candles, reach_open_ms=reach_open_ms):
            latest_ms = repository.latest_open_time_ms(exchange=self.exchange, timeframe=snapshot.timeframe)
            if latest_ms is None or latest_ms <= reach_open_ms:
                return None
        return RunWindow(snapshot=snapshot, horizon=horizon, step_ms=step_ms, candles=candles)


def _as_of_ms(snapshot: Snapshot) -> int:
    return int(snapshot.data_as_of.timestamp() * 1000)


def _window_stored(candles: Mapping[str, Sequence[Candle]], *, reach_open_ms: int) -> bool:
    return all(series and series[-1].open_time_ms == reach_open_ms for series in candles.values())


def _log_scored(snapshot: Snapshot, scores: Sequence[RunScore]) -> None:
    log.info(
        "run_scored",
        run_id=snapshot.run_id,
        exchange=snapshot.exchange,
        as_of=snapshot.data_as_of.isoformat(),
        horizons={s.horizon: {"ic": s.ic, "symbols": s.symbols, "excluded": len(s.excluded)} for s in scores},
    )


def backfill_track_record(settings: Settings, *, exchanges: Sequence[str], stream: TextIO | None = None) -> int:
    """Score every stored run of ``exchanges`` whose horizons have elapsed (progress on ``stream``, default
    stdout); returns how many runs were scored."""
    out = stream or sys.stdout
    require_head(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        session_factory = make_session_factory(engine)
        options = analysis_options(settings)
        return sum(
            _backfill_exchange(RunScorer(exchange=e, options=options, session_factory=session_factory), out)
            for e in exchanges
        )
    finally:
        engine.dispose()


def _backfill_exchange(scorer: RunScorer, stream: TextIO) -> int:
    total = scorer.pending_runs()
    bar = ProgressBar(total, stream=stream, title="track-record", unit="runs")
    step = 1 if bar.tty else max(1, total // PLAIN_PROGRESS_STEPS)

    def progress(handled: int) -> None:
        if handled % step == 0 or handled >= total:
            bar.advance(handled - bar.done, label=scorer.exchange)

    result = scorer.score_pending(progress=progress if total else None)
    stream.write(
        f"track-record {scorer.exchange}: {result.runs} runs scored ({result.scores} horizon scores), "
        f"{result.not_ready} waiting for candles\n"
    )
    return result.runs
