"""``analyse``: one exchange's candles and tickers in, ranked recommendations, levels and market status out.

Invariants:
- Pure and causal: the result depends only on the arguments (no I/O, no clock, no state kept between calls), and
  every indicator at a candle uses only candles that closed at or before it.
- A symbol whose analysis-timeframe series is unusable (fewer than ``MIN_CANDLES``, not ascending, bad prices) is
  left out of everything and reported in ``errors[symbol]``; every other symbol gets a recommendation and levels.
- Levels use the levels timeframe when it has at least ``MIN_LEVEL_CANDLES`` usable candles, else the analysis
  timeframe (``calculation_method`` ends in ``_fallback``); kinds are relative to the analysis-timeframe last close.
- The market trend follows the ``benchmark_base`` symbol (the most traded one if several quotes exist); without it
  the most traded symbol stands in (``market.details["benchmark"]`` names the one used).
- ``data_as_of_ms`` is the latest close time (open time + timeframe) of the analysis candles used.
- Raises ``AnalysisError`` (a ``ValueError``) when no symbol can be analysed, and ``ValueError`` for an unknown
  timeframe string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.analysis.levels import MIN_LEVEL_CANDLES, support_levels
from app.analysis.market import BenchmarkTrend, benchmark_trend, market_status
from app.analysis.metrics import (
    MIN_CANDLES,
    CandleArrays,
    SymbolMetrics,
    candle_arrays,
    check_series,
    compute_metrics,
)
from app.analysis.recommend import rank
from app.domain import AnalysisResult, Candle, SupportLevels, Ticker, timeframe_ms


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
    benchmark_base: str = "BTC",
) -> AnalysisResult:
    """Recommendations, support levels and market status from closed candles (symbol -> timeframe -> candles)."""
    timeframe_ms(analysis_timeframe)
    timeframe_ms(levels_timeframe)
    errors: dict[str, str] = {}
    series: dict[str, CandleArrays] = {}
    for symbol in sorted(candles):
        arrays = candle_arrays(candles[symbol].get(analysis_timeframe, ()))
        problem = check_series(arrays, min_candles=MIN_CANDLES)
        if problem is not None:
            errors[symbol] = f"{analysis_timeframe} candles: {problem}"
            continue
        series[symbol] = arrays
    if not series:
        raise AnalysisError(errors)
    metrics = compute_metrics(series, timeframe=analysis_timeframe, tickers=tickers)
    levels = {
        m.symbol: _levels(
            m,
            candles[m.symbol],
            analysis=series[m.symbol],
            analysis_timeframe=analysis_timeframe,
            levels_timeframe=levels_timeframe,
        )
        for m in metrics
    }
    return AnalysisResult(
        recommendations=rank(metrics, timeframe=analysis_timeframe),
        levels=levels,
        market=market_status(metrics, benchmark=_benchmark(metrics, series, base=benchmark_base)),
        data_as_of_ms=max(m.close_time_ms for m in metrics),
        errors=errors,
    )


def _levels(
    m: SymbolMetrics,
    by_timeframe: Mapping[str, Sequence[Candle]],
    *,
    analysis: CandleArrays,
    analysis_timeframe: str,
    levels_timeframe: str,
) -> SupportLevels:
    arrays, timeframe, suffix = analysis, analysis_timeframe, ""
    if levels_timeframe != analysis_timeframe:
        own = candle_arrays(by_timeframe.get(levels_timeframe, ()))
        if check_series(own, min_candles=MIN_LEVEL_CANDLES) is None:
            arrays, timeframe = own, levels_timeframe
        else:
            suffix = "_fallback"
    return support_levels(
        m.symbol, arrays, reference_price=m.close, calculation_method=f"swing_clusters_{timeframe}{suffix}"
    )


def _benchmark(metrics: Sequence[SymbolMetrics], series: Mapping[str, CandleArrays], *, base: str) -> BenchmarkTrend:
    by_volume = sorted(metrics, key=lambda m: (-m.volume_24h, m.symbol))
    matching = [m for m in by_volume if m.symbol.split("/")[0].upper() == base.upper()]
    chosen = (matching or by_volume)[0].symbol
    return benchmark_trend(chosen, series[chosen].close)
