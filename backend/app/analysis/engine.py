"""``analyse``: one exchange's candles and tickers in, ranked recommendations, levels and market status out.

Invariants:
- Pure and causal: the result depends only on the arguments (no I/O, no clock, no state kept between calls), and
  every indicator at a candle uses only candles that closed at or before it.
- A symbol whose analysis-timeframe series is unusable (fewer than ``MIN_CANDLES``, not ascending, bad prices) or
  stale is left out of everything and reported in ``errors[symbol]``; every other symbol gets a recommendation and
  levels. A series with a price discontinuity is analysed on the candles after its last break (left out when too
  few remain), and ``errors[symbol]`` says so too (``app.analysis.hazards``: the rules).
- Levels use the levels timeframe when it has at least ``MIN_LEVEL_CANDLES`` usable candles after its last price
  discontinuity, else the analysis timeframe's (``calculation_method`` ends in ``_fallback``); kinds are relative
  to the analysis-timeframe last close.
- The market trend follows the ``benchmark_base`` symbol (the most traded one if several quotes exist); without it
  the most traded symbol stands in (``market.details["benchmark"]`` names the one used).
- One composite per horizon in ``horizons`` (default ``default_horizons(analysis_timeframe)``), with that horizon's
  ``models`` entry; a horizon without a model gets the prior model (labels HOLD, its note says why). The legacy
  fields of each recommendation follow ``default_horizon`` (default: the first horizon). ``liquidity`` (the BUY
  gate) defaults to ``LiquidityGate()``.
- ``data_as_of_ms`` is the latest close time (open time + timeframe) of the analysis candles used.
- Raises ``AnalysisError`` (a ``ValueError``) when no symbol can be analysed, and ``ValueError`` for an unknown
  timeframe string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.analysis import indicators as ind
from app.analysis.hazards import after_last_break, screen, tickers_after_breaks
from app.analysis.levels import LEVEL_ATR_PERIOD, MIN_LEVEL_CANDLES, PivotInput, support_levels
from app.analysis.market import BenchmarkTrend, benchmark_trend, market_status
from app.analysis.model_fit import prior_model
from app.analysis.recommend import LiquidityGate, rank
from app.analysis.symbol_indicators import (
    DAY_MS,
    MIN_CANDLES,
    CandleArrays,
    SymbolIndicators,
    candle_arrays,
    check_series,
    compute_indicators,
    stack_right_aligned,
)
from app.domain import (
    AnalysisResult,
    Candle,
    Horizon,
    HorizonModel,
    SupportLevels,
    Ticker,
    default_horizons,
    timeframe_ms,
)

BENCHMARK_BASE = "BTC"  # the market trend's benchmark (its most traded pair)
NO_MODEL_NOTE = "labels are HOLD: no model has been fitted for this horizon yet; prior weights used"


class AnalysisError(ValueError):
    """No symbol could be analysed; ``errors`` says why for each one."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        shown = "; ".join(f"{symbol}: {why}" for symbol, why in list(self.errors.items())[:5])
        super().__init__(f"no symbol could be analysed ({len(self.errors)} given) {shown}".strip())


def analyse(
    candles: Mapping[str, Mapping[str, Sequence[Candle]]],
    *,
    tickers: Mapping[str, Ticker],
    analysis_timeframe: str,
    levels_timeframe: str,
    benchmark_base: str = BENCHMARK_BASE,
    horizons: tuple[Horizon, ...] | None = None,
    models: Mapping[str, HorizonModel] | None = None,
    default_horizon: str | None = None,
    liquidity: LiquidityGate | None = None,
) -> AnalysisResult:
    """Recommendations, support levels and market status from closed candles (symbol -> timeframe -> candles)."""
    timeframe_ms(analysis_timeframe)
    timeframe_ms(levels_timeframe)
    screened = screen(
        {symbol: candle_arrays(candles[symbol].get(analysis_timeframe, ())) for symbol in sorted(candles)},
        timeframe=analysis_timeframe,
        min_candles=MIN_CANDLES,
    )
    series, errors = screened.series, screened.errors
    if not series:
        raise AnalysisError(errors)
    panel = compute_indicators(
        series,
        timeframe=analysis_timeframe,
        tickers=tickers_after_breaks(tickers, screened, timeframe=analysis_timeframe),
    )
    metrics = panel.metrics
    served = _served_models(
        horizons or default_horizons(analysis_timeframe), models or {}, timeframe=analysis_timeframe
    )
    levels = _all_levels(
        metrics, candles, series, analysis_timeframe=analysis_timeframe, levels_timeframe=levels_timeframe
    )
    return AnalysisResult(
        recommendations=rank(
            metrics,
            panel.last_rows,
            timeframe=analysis_timeframe,
            models=served,
            default_horizon=default_horizon or next(iter(served)),
            liquidity=liquidity,
        ),
        levels=levels,
        market=market_status(
            metrics,
            benchmark=_benchmark(metrics, series, base=benchmark_base),
            median_atr_pct_history=panel.median_atr_pct_history,
        ),
        data_as_of_ms=max(m.close_time_ms for m in metrics),
        errors=errors,
        models=served,
    )


def _served_models(
    horizons: tuple[Horizon, ...], models: Mapping[str, HorizonModel], *, timeframe: str
) -> dict[str, HorizonModel]:
    """Each horizon's model, the prior model where none was fitted."""
    candle_ms = timeframe_ms(timeframe)
    return {h.name: models.get(h.name) or prior_model(h, candle_ms=candle_ms, note=NO_MODEL_NOTE) for h in horizons}


def _levels_series(
    by_timeframe: Mapping[str, Sequence[Candle]],
    analysis: CandleArrays,
    *,
    analysis_timeframe: str,
    levels_timeframe: str,
) -> tuple[CandleArrays, str, str]:
    """(arrays, timeframe, method suffix) the levels of one symbol are computed from."""
    if levels_timeframe == analysis_timeframe:
        return analysis, analysis_timeframe, ""
    own = candle_arrays(by_timeframe.get(levels_timeframe, ()))
    if check_series(own, min_candles=MIN_LEVEL_CANDLES) is None:
        segment, _ = after_last_break(own, min_candles=MIN_LEVEL_CANDLES)
        if segment is not None:
            return segment, levels_timeframe, ""
    return analysis, analysis_timeframe, "_fallback"


def _all_levels(
    metrics: Sequence[SymbolIndicators],
    candles: Mapping[str, Mapping[str, Sequence[Candle]]],
    series: Mapping[str, CandleArrays],
    *,
    analysis_timeframe: str,
    levels_timeframe: str,
) -> dict[str, SupportLevels]:
    chosen = {
        m.symbol: _levels_series(
            candles[m.symbol],
            series[m.symbol],
            analysis_timeframe=analysis_timeframe,
            levels_timeframe=levels_timeframe,
        )
        for m in metrics
    }
    arrays = [chosen[m.symbol][0] for m in metrics]
    high, low, close = (stack_right_aligned([getattr(a, name) for a in arrays]) for name in ("high", "low", "close"))
    atr_last = ind.atr(high, low, close, period=LEVEL_ATR_PERIOD)[-1]  # one vectorised pass for every symbol
    out = {}
    for index, m in enumerate(metrics):
        own, timeframe, suffix = chosen[m.symbol]
        # Pivots need candles no longer than a day; the analysis series stands in for longer levels candles.
        pivot_source = (own, timeframe) if timeframe_ms(timeframe) <= DAY_MS else (series[m.symbol], analysis_timeframe)
        pivots = PivotInput(pivot_source[0], candle_ms=timeframe_ms(pivot_source[1]), as_of_ms=m.close_time_ms)
        out[m.symbol] = support_levels(
            m.symbol,
            own,
            reference_price=m.close,
            calculation_method=f"levels_{timeframe}{suffix}",
            pivots=pivots,
            atr=float(atr_last[index]),
        )
    return out


def _benchmark(metrics: Sequence[SymbolIndicators], series: Mapping[str, CandleArrays], *, base: str) -> BenchmarkTrend:
    by_volume = sorted(metrics, key=lambda m: (-m.volume_24h, m.symbol))
    matching = [m for m in by_volume if m.symbol.split("/")[0].upper() == base.upper()]
    chosen = (matching or by_volume)[0].symbol
    return benchmark_trend(chosen, series[chosen].close)
