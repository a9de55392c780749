"""One analysis cycle for one exchange: collect closed candles → analyse → publish, recorded as a run.

Invariants:
- The cycle observes one ``now_ms`` (from the source's clock); it stores and analyses only candles that closed at
  or before it, so the analysis is causal even when the replay clock is behind stored data.
- Every run gets a row in ``analysis_runs`` before any work; it ends ``succeeded``, ``partial`` (published, some
  symbols left out) or ``failed`` (nothing published, the previous snapshot stays current: ``app.worker.outcome``
  says when). The same transaction marks runs of the exchange left ``running`` by a dead worker as failed
  (``abandoned: ...``): the caller runs one cycle per exchange at a time (the scheduler in one process, the job's
  advisory lock across processes).
- Every stage after that row (the clock: ``start_cycle()``, the universe, the tickers, the collection, the start
  refit, the analysis, the publish) runs inside the run's error handling: an ``ExchangeError`` (a data problem)
  fails the run with one line naming the stage (``universe: ExchangeUnavailable: ...``), no traceback; anything
  else is a bug or a database fault, logged as ``run_crashed`` with its traceback and recorded ``failed``.
- Isolation: one symbol's problem (a failed series: ``app.worker.collect``; an unusable series or a price
  discontinuity: ``app.analysis.hazards``, logged as ``analysis_hazard``) leaves that symbol out with a one-line
  reason in the run's ``errors``; every other symbol is analysed and published.
- Tickers: one call per run for the universe; when it fails the run's 24h statistics come from the stored candles
  (``app.worker.tickers``) and the snapshot says ``tickers_source: candles``.
- The source's clock is given the stored position (close time of the newest stored candle of the smallest
  timeframe): the replay derives ``now`` from it, so workers taking turns never move it backwards.
- The summary event ``run_finished`` carries run id, exchange, status, counts, errors and duration.
- The cycle collects the last selected universe (``Universe``; selected on the first cycle, then refreshed by its
  own job), per symbol and timeframe only what closed since the last stored candle (the first collection fetches
  ``lookback_candles``, more of the analysis timeframe: see Models); at most ``collect_concurrency`` symbols at once.
- Models: before the analysis the cycle serves the newest usable stored models (``ServedModels``: one small query
  per cycle, decoded again only when the refit stored newer ones); the snapshot carries them. ``before_analysis``
  (the worker's start refit) runs after the collection, so the first run of a fresh database is already fitted.
  The first collection of a symbol fetches ``max(lookback_candles, options.history_candles)`` analysis candles, so
  the refit (``refit_models``: the exchange's stored candles up to the stored position) has its window.
- Gaps are logged as ``candle_gap`` and never filled (``app.worker.collect``); ``CandleRepository.gaps`` reports
  them from the stored candles.
- Publishing is one database transaction followed by the cache write: readers never see half a run. A cycle
  cancelled before publish leaves nothing visible but its ``failed`` run row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.analysis.engine import AnalysisError
from app.analysis.served import analyse_served
from app.config import Settings
from app.domain import Candle, HorizonModel, RunStatus, Snapshot, ms_to_datetime, timeframe_ms, utc_now
from app.exchange import ExchangeError, MarketSource
from app.storage.cache import SnapshotCache
from app.storage.leases import ABANDONED_ERROR, abandon_running
from app.storage.publish import publish
from app.storage.repositories import CandleRepository, RunRepository
from app.worker.analysis_options import analysis_options
from app.worker.collect import Collector, failure_text, log_gaps
from app.worker.outcome import CycleOutcome, log_run_finished, missing_benchmark, new_run_id
from app.worker.refit import ModelRefit, RefitResult
from app.worker.served_models import ServedModels
from app.worker.tickers import RunTickers, fetch_tickers, stored_tickers
from app.worker.universe import Universe, rules_from_settings

__all__ = ["CycleOutcome", "ExchangeCycle", "log_gaps", "log_run_finished", "new_run_id"]

log = structlog.get_logger(__name__)

BeforeAnalysis = Callable[[int], Awaitable[object]]  # awaited with the cycle's now_ms after the collection


@dataclass(slots=True)
class _Run:
    """The run in progress: its id, start, the stage it is in (named in a failure) and the clock it observes."""

    run_id: str
    started: float
    stage: str = "clock"
    now_ms: int | None = None
    universe_size: int = 0


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
        self.collector = Collector(
            source=source,
            session_factory=session_factory,
            timeframes=settings.timeframes,
            limits={tf: self._collect_limit(tf) for tf in settings.timeframes},
            concurrency=settings.collect_concurrency,
        )
        self.last_now_ms: int | None = None

    @property
    def exchange(self) -> str:
        """The exchange this cycle serves."""
        return self.source.exchange_id

    @property
    def models(self) -> dict[str, HorizonModel]:
        """The usable stored models by horizon, as of the last cycle (empty: every horizon gets the prior)."""
        return self.served.models

    async def run_once(self, *, before_analysis: BeforeAnalysis | None = None) -> CycleOutcome:
        """Collect, analyse and publish once; never raises for exchange, data or analysis failures.

        ``before_analysis(now_ms)`` is awaited after the collection, before the models are read (the start refit).
        """
        run = _Run(run_id=new_run_id(int(time.time() * 1000)), started=time.monotonic())
        await asyncio.to_thread(self._record_start, run.run_id)
        structlog.contextvars.bind_contextvars(run_id=run.run_id, exchange=self.exchange)
        try:
            outcome = await self._stages(run, before_analysis=before_analysis)
        except ExchangeError as exc:
            outcome = replace(self._failed(run, f"{run.stage}: {failure_text(exc)}"), exchange_errors=1)
        except Exception as exc:  # a bug or a database fault: record the run as failed, keep the worker alive
            log.exception("run_crashed", run_id=run.run_id, exchange=self.exchange, stage=run.stage)
            outcome = self._failed(run, f"{run.stage}: {failure_text(exc)}")
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._record_failure, run.run_id, "interrupted by shutdown", {}))
            raise
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "exchange")
        if outcome.status is RunStatus.FAILED:
            await asyncio.to_thread(
                self._record_failure, run.run_id, outcome.error or "failed", outcome.errors, outcome.symbols_total
            )
        log_run_finished(outcome, now_ms=run.now_ms)
        return outcome

    async def _stages(self, run: _Run, *, before_analysis: BeforeAnalysis | None) -> CycleOutcome:
        stored_until_ms = await asyncio.to_thread(self._stored_until_ms)
        run.now_ms = now_ms = await self.source.start_cycle(stored_until_ms=stored_until_ms)
        self.last_now_ms = now_ms
        run.stage = "universe"
        universe = await self.universe.ensure(now_ms=now_ms)
        run.universe_size = len(universe)
        run.stage = "tickers"
        fetched = await fetch_tickers(self.source, universe)
        run.stage = "collect"
        errors = await self.collector.collect(universe, now_ms=now_ms)
        collected = [s for s in universe if s not in errors]
        if not collected:
            return self._failed(run, "no symbol could be collected", errors)
        if before_analysis is not None:
            run.stage = "refit"
            await before_analysis(now_ms)
        run.stage = "analyse"
        if fetched is None:  # the tickers call failed: 24h statistics from the stored candles
            fetched = await asyncio.to_thread(self._stored_tickers, collected, now_ms)
        analysed = await self._analyse(run, universe, collected, fetched, collect_errors=errors)
        if isinstance(analysed, CycleOutcome):
            return analysed
        run.stage = "publish"
        await asyncio.to_thread(partial(publish, analysed, session_factory=self.session_factory, cache=self.cache))
        return CycleOutcome(
            run_id=run.run_id,
            exchange=self.exchange,
            status=RunStatus.SUCCEEDED if not analysed.errors else RunStatus.PARTIAL,
            symbols_total=len(universe),
            symbols_ok=len(analysed.recommendations),
            duration_s=time.monotonic() - run.started,
            errors=dict(analysed.errors),
            exchange_errors=len(errors),
            tickers_source=analysed.tickers_source,
        )

    async def _analyse(
        self,
        run: _Run,
        universe: Sequence[str],
        collected: Sequence[str],
        tickers: RunTickers,
        *,
        collect_errors: Mapping[str, str],
    ) -> Snapshot | CycleOutcome:
        """The run's snapshot, or the failed outcome when nothing usable remains (no symbol, no benchmark)."""
        assert run.now_ms is not None
        models = await asyncio.to_thread(self._models_at, run.now_ms)
        candles = await asyncio.to_thread(self._load_candles, collected, run.now_ms)
        try:
            snapshot = await asyncio.to_thread(
                self._analyse_to_snapshot, run, candles, tickers, collect_errors=collect_errors, models=models
            )
        except AnalysisError as exc:
            return self._failed(run, "no symbol could be analysed", {**collect_errors, **exc.errors})
        analysed = {r.symbol for r in snapshot.recommendations}
        benchmark = missing_benchmark(universe, analysed, snapshot.errors)
        if benchmark is not None:
            return self._failed(run, benchmark, snapshot.errors)
        return snapshot

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
        run: _Run,
        candles: Mapping[str, Mapping[str, Sequence[Candle]]],
        tickers: RunTickers,
        *,
        collect_errors: Mapping[str, str],
        models: Mapping[str, HorizonModel],
    ) -> Snapshot:
        chosen = {s: tickers.tickers[s] for s in candles if s in tickers.tickers}
        result = analyse_served(candles, tickers=chosen, options=self.options, models=models)
        for symbol, reason in result.errors.items():  # left out, or analysed after a price discontinuity
            log.warning("analysis_hazard", exchange=self.exchange, symbol=symbol, reason=reason)
        return Snapshot(
            run_id=run.run_id,
            exchange=self.exchange,
            timeframe=self.settings.analysis_timeframe,
            data_as_of=ms_to_datetime(result.data_as_of_ms),
            generated_at=utc_now(),
            universe_size=run.universe_size,
            recommendations=result.recommendations,
            levels=result.levels,
            market=result.market,
            errors={**collect_errors, **result.errors},
            models=result.models,
            default_horizon=self.options.default_horizon,
            tickers_source=tickers.source,
        )

    def _stored_tickers(self, symbols: Sequence[str], now_ms: int) -> RunTickers:
        step = min(self.settings.timeframes, key=timeframe_ms)
        return stored_tickers(
            self.session_factory, exchange=self.exchange, symbols=symbols, timeframe=step, now_ms=now_ms
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

    def _record_failure(self, run_id: str, error: str, errors: Mapping[str, str], symbols_total: int = 0) -> None:
        with self.session_factory() as session:
            RunRepository(session).finish(
                run_id=run_id,
                status=RunStatus.FAILED,
                finished_at=utc_now(),
                symbols_total=max(symbols_total, len(errors)),
                symbols_ok=0,
                symbols_failed=len(errors),
                error=error,
                errors=dict(errors),
            )
            session.commit()

    def _failed(self, run: _Run, error: str, errors: Mapping[str, str] | None = None) -> CycleOutcome:
        return CycleOutcome(
            run_id=run.run_id,
            exchange=self.exchange,
            status=RunStatus.FAILED,
            symbols_total=max(run.universe_size, len(errors or {})),
            symbols_ok=0,
            duration_s=time.monotonic() - run.started,
            errors=dict(errors or {}),
            error=error,
            exchange_errors=len(errors or {}),
        )
