"""The two calls a deployment makes with its ``AnalysisOptions``: refit the models, and analyse with them.

The worker's refit job and cycle and ``dantaro evaluate`` call exactly these functions, so the evaluation scores the
configuration that is served (one code path, not a copy).

Invariants:
- ``refit`` reads only the candles it is given (the caller passes candles closed by ``fitted_at``), and of those only
  the newest ``options.history_candles`` per symbol, so the worker and the evaluation fit on the same input whatever
  they loaded. A series that cannot be analysed (too short, not ascending, a bad price) is left out of the fit; a
  series with a price discontinuity becomes one column per segment, so no factor or return spans the break.
- The factor history keeps the newest ``fit.window_candles + max horizon`` rows (older rows are only the indicators'
  warm-up); the fit itself is ``fit_models`` (``app.analysis.model_fit``), pinned weights from the options.
- Without any usable series every horizon gets its prior model (labels HOLD, the note says why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from app.analysis.engine import analyse
from app.analysis.hazards import history_columns
from app.analysis.model_fit import fit_models, prior_model
from app.analysis.options import AnalysisOptions
from app.analysis.panel import factor_history
from app.analysis.symbol_indicators import MIN_CANDLES, CandleArrays, candle_arrays, check_series
from app.domain import AnalysisResult, Candle, HorizonModel, Ticker

NO_SERIES_NOTE = "labels are HOLD: no series with enough candles to fit; prior weights used"


def fit_columns(series: Mapping[str, CandleArrays], *, history_candles: int) -> dict[str, CandleArrays]:
    """The newest ``history_candles`` of every usable series, split at price discontinuities (``history_columns``),
    as the columns of the factor history."""
    usable: dict[str, CandleArrays] = {}
    for symbol in sorted(series):
        arrays = series[symbol][-history_candles:]
        if check_series(arrays, min_candles=MIN_CANDLES) is None:
            usable[symbol] = arrays
    return history_columns(usable)


def refit_series(
    series: Mapping[str, CandleArrays], options: AnalysisOptions, *, fitted_at: datetime
) -> dict[str, HorizonModel]:
    """Each served horizon's model fitted on ``series`` (symbol -> analysis-timeframe candles closed by
    ``fitted_at``, ascending, as arrays)."""
    columns = fit_columns(series, history_candles=options.history_candles)
    if not columns:
        return {h.name: prior_model(h, candle_ms=options.candle_ms, note=NO_SERIES_NOTE) for h in options.horizons}
    history = factor_history(
        columns,
        timeframe=options.analysis_timeframe,
        keep_rows=options.fit.window_candles + max(h.candles for h in options.horizons),
    )
    return fit_models(
        history,
        options.horizons,
        candle_ms=options.candle_ms,
        settings=options.fit,
        fitted_at=fitted_at,
        pinned=options.pinned_weights,
    )


def refit(
    candles: Mapping[str, Sequence[Candle]], options: AnalysisOptions, *, fitted_at: datetime
) -> dict[str, HorizonModel]:
    """``refit_series`` on domain candles (what ``dantaro evaluate`` holds)."""
    return refit_series({symbol: candle_arrays(own) for symbol, own in candles.items()}, options, fitted_at=fitted_at)


def analyse_served(
    candles: Mapping[str, Mapping[str, Sequence[Candle]]],
    *,
    tickers: Mapping[str, Ticker],
    options: AnalysisOptions,
    models: Mapping[str, HorizonModel],
) -> AnalysisResult:
    """``analyse`` with the options' timeframes, horizons, default horizon and liquidity gate, and ``models``."""
    return analyse(
        candles,
        tickers=tickers,
        analysis_timeframe=options.analysis_timeframe,
        levels_timeframe=options.levels_timeframe,
        horizons=options.horizons,
        models=models,
        default_horizon=options.default_horizon,
        liquidity=options.liquidity,
    )
