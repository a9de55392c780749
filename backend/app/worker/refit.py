"""The walk-forward refit of one exchange: stored candles in, one fitted model per served horizon stored.

Invariants:
- Causal: a refit at ``now_ms`` reads only analysis-timeframe candles that closed by ``now_ms``
  (``CandleRepository.load_columns``), the newest ``options.history_candles`` per symbol of the given universe, and
  every model's ``fitted_at`` is ``now_ms``: candles stored with a later close never change the fit. Symbols whose
  stored series cannot be analysed (``check_series``: too short, not ascending, bad prices) are left out.
- The fit itself is ``app.analysis.served.refit_series``, the call ``dantaro evaluate`` makes too; pinned weights
  (``DANTARO_FACTOR_WEIGHTS``) are measured and calibrated the same way and stored as ``configured``; too little
  history gives the prior models (labels HOLD, the note says why), stored like any other fit.
- One unit of work: every horizon's model is upserted into ``model_fits`` and committed once. Any failure (database,
  data, a bug) is logged as ``refit_failed`` and stores nothing: the previous models stay in use.
- ``refit_finished`` logs exchange, now_ms, trigger, symbols, duration_s, cross_sections and per horizon the weights
  source, walk-forward IC and t, labels_active and cross_sections.
- ``only_if_due`` (the start refit) re-reads the stored models first and fits only when ``refit_due`` says so; the
  caller holds the job's lock, so workers starting together fit once. One refit per exchange runs at a time in a
  process (a second one is skipped).
Times: ``now_ms`` epoch milliseconds on the exchange's data clock (the replay's simulated clock); ``*_s`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.analysis.options import AnalysisOptions
from app.analysis.served import refit_series
from app.analysis.symbol_indicators import MIN_CANDLES, CandleArrays, check_series
from app.domain import HorizonModel, ms_to_datetime
from app.storage.candles import CandleColumns
from app.storage.model_fits import ModelRepository
from app.storage.repositories import CandleRepository
from app.worker.served_models import refit_due

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RefitResult:
    """What one refit stored: the models by horizon, from how many symbols, how long it took."""

    exchange: str
    now_ms: int
    models: Mapping[str, HorizonModel]
    symbols: int
    duration_s: float


def series_arrays(columns: CandleColumns) -> CandleArrays:
    """Stored candle columns as the analysis' arrays."""
    return CandleArrays(
        open_time_ms=np.asarray(columns.open_time_ms, dtype=np.int64),
        open=np.asarray(columns.open, dtype=np.float64),
        high=np.asarray(columns.high, dtype=np.float64),
        low=np.asarray(columns.low, dtype=np.float64),
        close=np.asarray(columns.close, dtype=np.float64),
        volume=np.asarray(columns.volume, dtype=np.float64),
    )


class ModelRefit:
    """Fits and stores one exchange's models from its stored candles."""

    def __init__(self, *, exchange: str, options: AnalysisOptions, session_factory: sessionmaker[Session]) -> None:
        self.exchange = exchange
        self.options = options
        self.session_factory = session_factory
        self._running = threading.Lock()

    def run(self, *, symbols: Sequence[str], now_ms: int, only_if_due: bool = False) -> RefitResult | None:
        """Fit and store every horizon's model at ``now_ms`` (blocking); None when skipped or failed (logged)."""
        if not self._running.acquire(blocking=False):
            log.info("refit_skipped", exchange=self.exchange, reason="a refit is running in this process")
            return None
        try:
            return self._run_locked(symbols, now_ms=now_ms, only_if_due=only_if_due)
        finally:
            self._running.release()

    def _run_locked(self, symbols: Sequence[str], *, now_ms: int, only_if_due: bool) -> RefitResult | None:
        started = time.monotonic()
        try:
            due = self._due(now_ms) if only_if_due else None
            if only_if_due and due is None:
                log.info("refit_skipped", exchange=self.exchange, now_ms=now_ms, reason="the stored models are current")
                return None
            series = self.read_series(symbols, now_ms=now_ms)
            models = self.fit(series, now_ms=now_ms)
            self._store(models)
        except Exception as exc:  # the previous models stay in use; the next refit tries again
            log.exception("refit_failed", exchange=self.exchange, now_ms=now_ms, error=f"{type(exc).__name__}: {exc}")
            return None
        result = RefitResult(self.exchange, now_ms, models, len(series), time.monotonic() - started)
        log_refit_finished(result, trigger="scheduled" if due is None else f"start: {due}")
        return result

    def read_series(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, CandleArrays]:
        """The usable stored analysis-timeframe series of ``symbols`` closed by ``now_ms`` (newest history_candles)."""
        with self.session_factory() as session:
            columns = CandleRepository(session).load_columns(
                exchange=self.exchange,
                timeframe=self.options.analysis_timeframe,
                symbols=symbols,
                until_ms=now_ms,
                limit=self.options.history_candles,
            )
        series = {symbol: series_arrays(own) for symbol, own in columns.items()}
        return {s: arrays for s, arrays in series.items() if check_series(arrays, min_candles=MIN_CANDLES) is None}

    def fit(self, series: Mapping[str, CandleArrays], *, now_ms: int) -> dict[str, HorizonModel]:
        """Every served horizon's model fitted on ``series`` at ``now_ms``; ValueError without any usable series."""
        if not series:
            raise ValueError(f"no stored {self.options.analysis_timeframe} candles to fit on")
        return refit_series(series, self.options, fitted_at=ms_to_datetime(now_ms))

    def _due(self, now_ms: int) -> str | None:
        with self.session_factory() as session:
            stored = ModelRepository(session).load(exchange=self.exchange)
        return refit_due(stored, self.options, now_ms=now_ms)

    def _store(self, models: Mapping[str, HorizonModel]) -> None:
        with self.session_factory() as session:
            ModelRepository(session).save(exchange=self.exchange, models=models)
            session.commit()


def log_refit_finished(result: RefitResult, *, trigger: str) -> None:
    """The refit's summary event: per horizon where the weights came from and the measured edge."""
    log.info(
        "refit_finished",
        exchange=result.exchange,
        now_ms=result.now_ms,
        trigger=trigger,
        symbols=result.symbols,
        duration_s=round(result.duration_s, 3),
        cross_sections=max((m.cross_sections for m in result.models.values()), default=0),
        horizons={
            name: {
                "source": m.weights_source,
                "walk_forward_ic": m.walk_forward_ic,
                "walk_forward_t": m.walk_forward_t,
                "labels_active": m.labels_active,
                "cross_sections": m.cross_sections,
            }
            for name, m in result.models.items()
        },
    )
