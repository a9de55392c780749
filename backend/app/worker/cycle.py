"""One analysis cycle for one exchange: collect closed candles → analyse → publish, recorded as a run.

Invariants:
- The cycle observes one ``now_ms`` (from the source's clock); it stores and analyses only candles that closed at
  or before it, so the analysis is causal even when the replay clock is behind stored data.
- Every run gets a row in ``analysis_runs`` before any work; it ends ``succeeded``, ``partial`` (published, some
  symbols failed) or ``failed`` (nothing published, the previous snapshot stays current). The same transaction
  marks runs of the exchange left ``running`` by a dead worker as failed (``abandoned: ...``): the caller runs
  one cycle per exchange at a time (the scheduler in one process, the job's advisory lock across processes).
- The source's clock is given the stored position (close time of the newest stored candle of the smallest
  timeframe): the replay derives ``now`` from it, so workers taking turns never move it backwards.
- The summary event ``run_finished`` carries run id, exchange, status, counts, errors and duration.
- The cycle collects the last selected universe (``Universe``; selected on the first cycle, then refreshed by its
  own job) with one tickers call for it, and per symbol and timeframe only what closed since the last stored
  candle (the first collection fetches ``lookback_candles``, more of the analysis timeframe: see Models); at most
  ``collect_concurrency`` symbols at once.
- Models: before the analysis the cycle serves the newest usable stored models (``ServedModels``: one small query
  per cycle, decoded again only when the refit stored newer ones); the snapshot carries them. ``before_analysis``
  (the worker's start refit) runs after the collection, so the first run of a fresh database is already fitted.
  The first collection of a symbol fetches ``max(lookback_candles, options.history_candles)`` analysis candles, so
  the refit (``refit_models``: the exchange's stored candles up to the stored position) has its window.
- Gaps (missing open times after the last stored candle, before and between the fetched ones; the one gap rule
  of ``app.storage.gaps``) are logged as ``candle_gap`` and never filled; ``CandleRepository.gaps`` reports them
  from the stored candles.
- Publishing is one database transaction followed by the cache write: readers never see half a run. A cycle
  cancelled before publish leaves nothing visible but its ``failed`` run row.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.analysis.served import analyse_served
from app.config import Settings
from app.domain import Candle, HorizonModel, RunStatus, Snapshot, Ticker, ms_to_datetime, timeframe_ms, utc_now
from app.exchange import ExchangeError, MarketSource
from app.storage.cache import SnapshotCache
from app.storage.gaps import find_gaps
from app.storage.leases import ABANDONED_ERROR, abandon_running
from app.storage.publish import publish
from app.storage.repositories import CandleRepository, RunRepository
from app.worker.analysis_options import analysis_options
from app.worker.refit import ModelRefit, RefitResult
from app.worker.served_models import ServedModels
from app.worker.universe import Universe, rules_from_settings

log = structlog.get_logger(__name__)

BeforeAnalysis = Callable[[int], Awaitable[object]]  # awaited with the cycle's now_ms after the collection


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """What one cycle did, for logs, metrics and the ``--once`` exit code."""

    run_id: str
    exchange: str
    status: RunStatus
    symbols_total: int
    symbols_ok: int
    duration_s: float
    errors: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    exchange_errors: int = 0


def new_run_id(now_ms: int) -> str:
    """A sortable, unique run id: the wall-clock millisecond in hex followed by random hex."""
    return f"{now_ms:012x}{uuid.uuid4().hex[:20]}"


def log_gaps(exchange: str, symbol: str, timeframe: str, *, last_open_ms: int | None, candles: Sequence[Candle]) -> int:
    """Log every run of missing open times before and between ``candles`` (ascending); returns how many."""
    step_ms = timeframe_ms(timeframe)
    start_ms = None if last_open_ms is None else last_open_ms + step_ms
    gaps = find_gaps([candle.open_time_ms for candle in candles], step_ms=step_ms, start_ms=start_ms)
    for gap in gaps:
        log.warning(
            "candle_gap",
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            first_missing_ms=gap.first_missing_ms,
            missing=gap.missing,
        )
    return sum(gap.missing for gap in gaps)


class ExchangeCycle:
    """Runs cycles for one exchange with its own source, settings and storage handles."""

    def __init__(
        self,
        *,
        source: MarketSource,
        settings: Settings,
        session_factory: sessionmaker[Session],
        cache: SnapshotCache | None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.session_factory = session_factory
        self.cache = cache
        self.universe = Universe(
            source=source, rules=rules_from_settings(settings, source.exchange_id), timeframes=settings.timeframes
        )
        self.options = analysis_options(settings)  # validated here: a bad setting stops the worker at start
        self.served = ServedModels(exchange=source.exchange_id, options=self.options)
        self.refitter = ModelRefit(exchange=source.exchange_id, options=self.options, session_factory=session_factory)
        self.last_now_ms: int | None = None
        self._db_lock = asyncio.Lock()  # fetches run concurrently; candle reads and writes one at a time (SQLite)

    @property
    def exchange(self) -> str:
        """The exchange this cycle serves."""
        return self.source.exchange_id

    @property
    def models(self) -> dict[str, HorizonModel]:
        """The usable stored models by horizon, as of the last cycle (empty: every horizon gets the prior)."""
        return self.served.models

    async def run_once(self, *, before_analysis: BeforeAnalysis | None = None) -> CycleOutcome:
        """Collect, analyse and publish once; never raises for exchange or analysis failures.

        ``before_analysis(now_ms)`` is awaited after the collection, before the models are read (the start refit).
        """
        started = time.monotonic()
        stored_until_ms = await asyncio.to_thread(self._stored_until_ms)
        now_ms = await self.source.start_cycle(stored_until_ms=stored_until_ms)
        self.last_now_ms = now_ms
        run_id = new_run_id(int(time.time() * 1000))
        await asyncio.to_thread(self._record_start, run_id)
        structlog.contextvars.bind_contextvars(run_id=run_id, exchange=self.exchange)
        try:
            outcome = await self._collect_analyse_publish(
                run_id=run_id, now_ms=now_ms, started=started, before_analysis=before_analysis
            )
        except ExchangeError as exc:
            outcome = replace(self._failed(run_id, started, f"{type(exc).__name__}: {exc}"), exchange_errors=1)
        except Exception as exc:  # a bug or a database fault: record the run as failed, keep the worker alive
            log.exception("run_crashed", run_id=run_id, exchange=self.exchange)
            outcome = self._failed(run_id, started, f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._record_failure, run_id, "interrupted by shutdown", {}))
            raise
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "exchange")
        if outcome.status is RunStatus.FAILED:
            await asyncio.to_thread(self._record_failure, run_id, outcome.error or "failed", outcome.errors)
        log_run_finished(outcome, now_ms=now_ms)
        return outcome

    async def _collect_analyse_publish(
        self, *, run_id: str, now_ms: int, started: float, before_analysis: BeforeAnalysis | None
    ) -> CycleOutcome:
        universe = await self.universe.ensure(now_ms=now_ms)
        all_tickers = await self.source.fetch_tickers(universe)
        errors = await self._collect(universe, now_ms=now_ms)
        collected = [s for s in universe if s not in errors]
        if not collected:
            return self._failed(run_id, started, "no symbol could be collected", errors)
        if before_analysis is not None:
            await before_analysis(now_ms)
        models = await asyncio.to_thread(self._models_at, now_ms)
        candles = await asyncio.to_thread(self._load_candles, collected, now_ms)
        tickers = {s: all_tickers[s] for s in collected if s in all_tickers}
        snapshot = await asyncio.to_thread(
            self._analyse_to_snapshot, run_id, len(universe), candles, tickers, collect_errors=errors, models=models
        )
        status = RunStatus.SUCCEEDED if not snapshot.errors else RunStatus.PARTIAL
        await asyncio.to_thread(partial(publish, snapshot, session_factory=self.session_factory, cache=self.cache))
        return CycleOutcome(
            run_id=run_id,
            exchange=self.exchange,
            status=status,
            symbols_total=len(universe),
            symbols_ok=len(snapshot.recommendations),
            duration_s=time.monotonic() - started,
            errors=dict(snapshot.errors),
            exchange_errors=len(errors),
        )

    async def _collect(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, str]:
        """Fetch and store new closed candles for every symbol and timeframe; returns symbol → error."""
        semaphore = asyncio.Semaphore(self.settings.collect_concurrency)
        errors: dict[str, str] = {}

        async def collect_symbol(symbol: str) -> None:
            async with semaphore:
                try:
                    for timeframe in self.settings.timeframes:
                        await self._collect_series(symbol, timeframe, now_ms=now_ms)
                except ExchangeError as exc:
                    errors[symbol] = f"{type(exc).__name__}: {exc}"
                    log.warning("collect_failed", symbol=symbol, error=errors[symbol])

        await asyncio.gather(*(collect_symbol(symbol) for symbol in symbols))
        return errors

    async def _collect_series(self, symbol: str, timeframe: str, *, now_ms: int) -> None:
        async with self._db_lock:
            last_open_ms = await asyncio.to_thread(self._last_open_time_ms, symbol, timeframe)
        since_ms = None if last_open_ms is None else last_open_ms + timeframe_ms(timeframe)
        if since_ms is not None and since_ms + timeframe_ms(timeframe) > now_ms:
            return  # nothing new has closed since the last stored candle
        candles = await self.source.fetch_closed_candles(
            symbol, timeframe, since_ms=since_ms, limit=self._collect_limit(timeframe), now_ms=now_ms
        )
        if candles:
            log_gaps(self.exchange, symbol, timeframe, last_open_ms=last_open_ms, candles=candles)
            async with self._db_lock:
                await asyncio.to_thread(self._store, symbol, timeframe, candles)

    def _collect_limit(self, timeframe: str) -> int:
        """Most candles one collection fetches: the lookback, and the refit's history for the analysis timeframe."""
        if timeframe == self.options.analysis_timeframe:
            return max(self.options.lookback_candles, self.options.history_candles)
        return self.options.lookback_candles

    async def refit_models(self, *, now_ms: int | None = None, only_if_due: bool = False) -> RefitResult | None:
        """Refit every horizon on the universe's stored candles up to ``now_ms`` (default: the stored position);
        None when skipped (nothing stored yet, not due) or failed (logged)."""
        until_ms = now_ms if now_ms is not None else await asyncio.to_thread(self._stored_until_ms)
        if until_ms is None:
            log.info("refit_skipped", exchange=self.exchange, reason="no candles stored yet")
            return None
        try:
            symbols = await self.universe.ensure(now_ms=until_ms)
        except ExchangeError as exc:
            log.warning("refit_failed", exchange=self.exchange, error=f"{type(exc).__name__}: {exc}")
            return None
        return await asyncio.to_thread(self.refitter.run, symbols=symbols, now_ms=until_ms, only_if_due=only_if_due)

    def _models_at(self, now_ms: int) -> dict[str, HorizonModel]:
        with self.session_factory() as session:
            if self.served.refresh(session):
                log.info("models_loaded", exchange=self.exchange, horizons=sorted(self.served.models))
        return self.served.at(now_ms)

    async def refresh_universe(self) -> list[str] | None:
        """Select the universe again (the universe job); before the first cycle there is nothing to refresh."""
        if self.last_now_ms is None:
            return None
        now_ms = max(self.last_now_ms, int(time.time() * 1000)) if self.settings.market_source == "ccxt" else None
        return await self.universe.refresh(now_ms=now_ms or self.last_now_ms)

    def _last_open_time_ms(self, symbol: str, timeframe: str) -> int | None:
        with self.session_factory() as session:
            return CandleRepository(session).last_open_time_ms(
                exchange=self.exchange, symbol=symbol, timeframe=timeframe
            )

    def _store(self, symbol: str, timeframe: str, candles: Sequence[Candle]) -> None:
        with self.session_factory() as session:
            CandleRepository(session).upsert(
                exchange=self.exchange, symbol=symbol, timeframe=timeframe, candles=candles
            )
            session.commit()

    def _load_candles(self, symbols: Sequence[str], now_ms: int) -> dict[str, dict[str, list[Candle]]]:
        by_symbol: dict[str, dict[str, list[Candle]]] = {symbol: {} for symbol in symbols}
        with self.session_factory() as session:
            repo = CandleRepository(session)
            for timeframe in {self.settings.analysis_timeframe, self.settings.levels_timeframe}:
                loaded = repo.load(
                    exchange=self.exchange,
                    timeframe=timeframe,
                    symbols=symbols,
                    until_ms=now_ms,
                    limit=self.settings.lookback_candles,
                )
                for symbol, candles in loaded.items():
                    by_symbol[symbol][timeframe] = candles
        return by_symbol

    def _analyse_to_snapshot(
        self,
        run_id: str,
        universe_size: int,
        candles: Mapping[str, Mapping[str, Sequence[Candle]]],
        tickers: Mapping[str, Ticker],
        *,
        collect_errors: Mapping[str, str],
        models: Mapping[str, HorizonModel],
    ) -> Snapshot:
        result = analyse_served(candles, tickers=tickers, options=self.options, models=models)
        for symbol, reason in result.errors.items():  # left out, or analysed after a price discontinuity
            log.warning("analysis_hazard", exchange=self.exchange, symbol=symbol, reason=reason)
        return Snapshot(
            run_id=run_id,
            exchange=self.exchange,
            timeframe=self.settings.analysis_timeframe,
            data_as_of=ms_to_datetime(result.data_as_of_ms),
            generated_at=utc_now(),
            universe_size=universe_size,
            recommendations=result.recommendations,
            levels=result.levels,
            market=result.market,
            errors={**collect_errors, **result.errors},
            models=result.models,
            default_horizon=self.options.default_horizon,
        )

    def _stored_until_ms(self) -> int | None:
        step = min(self.settings.timeframes, key=timeframe_ms)
        with self.session_factory() as session:
            latest = CandleRepository(session).latest_open_time_ms(exchange=self.exchange, timeframe=step)
        return None if latest is None else latest + timeframe_ms(step)

    def _record_start(self, run_id: str) -> None:
        with self.session_factory() as session:
            abandoned = abandon_running(session, exchange=self.exchange)
            RunRepository(session).start(run_id=run_id, exchange=self.exchange, started_at=utc_now())
            session.commit()
        if abandoned:
            log.warning("runs_abandoned", exchange=self.exchange, run_ids=abandoned, error=ABANDONED_ERROR)

    def _record_failure(self, run_id: str, error: str, errors: Mapping[str, str]) -> None:
        with self.session_factory() as session:
            RunRepository(session).finish(
                run_id=run_id,
                status=RunStatus.FAILED,
                finished_at=utc_now(),
                symbols_total=len(errors),
                symbols_ok=0,
                symbols_failed=len(errors),
                error=error,
                errors=dict(errors),
            )
            session.commit()

    def _failed(self, run_id: str, started: float, error: str, errors: Mapping[str, str] | None = None) -> CycleOutcome:
        return CycleOutcome(
            run_id=run_id,
            exchange=self.exchange,
            status=RunStatus.FAILED,
            symbols_total=len(errors or {}),
            symbols_ok=0,
            duration_s=time.monotonic() - started,
            errors=dict(errors or {}),
            error=error,
            exchange_errors=len(errors or {}),
        )


def log_run_finished(outcome: CycleOutcome, *, now_ms: int, logger: Any = log) -> None:
    """The run's summary event: run id, exchange, status, counts, errors and duration."""
    logger.info(
        "run_finished",
        run_id=outcome.run_id,
        exchange=outcome.exchange,
        status=str(outcome.status),
        now_ms=now_ms,
        symbols=outcome.symbols_total,
        symbols_ok=outcome.symbols_ok,
        symbols_failed=len(outcome.errors),
        exchange_errors=outcome.exchange_errors,
        errors=dict(outcome.errors),
        duration_s=round(outcome.duration_s, 3),
        error=outcome.error,
    )
