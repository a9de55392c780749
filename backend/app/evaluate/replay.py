"""What the worker would hold at an evaluation time: the candles closed by then and the tickers derived from them.

Invariants:
- Causal: ``holding_at(market, now_ms)`` and ``fit_candles(market, fit_ms)`` read only candles whose close time
  (open time + timeframe) is at or before the given time: the last ``lookback_candles`` of the analysis and the
  levels timeframe, as the worker loads them, and the newest ``history_candles`` analysis candles for a refit.
- Tickers: ``app.domain.ticker_from_candles`` on the analysis candles closed by now, the replay source's own
  definition (the analysis timeframe is its step timeframe).
- Levels-timeframe candles come from their own files when there are any; otherwise they are resampled from the
  analysis candles (``resample``): periods aligned to the epoch, which for 1d are UTC days; a period becomes a candle
  only when every analysis candle of it is present (a complete day), and it is held only once it has closed.
- The cross-section at ``now_ms``: every symbol whose last analysis candle closed exactly at ``now_ms`` (it has an
  entry price); a symbol without a candle then (not trading, or a gap) sits the period out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.analysis.outcomes import PriceSeries, price_series
from app.domain import DAY_MS, Candle, Ticker, ticker_from_candles, timeframe_ms
from app.evaluate.candle_files import DataError, load_timeframe


@dataclass(frozen=True, slots=True)
class SymbolData:
    """One symbol's analysis and levels candles (ascending), their close times, and its prices for outcomes."""

    analysis: Sequence[Candle]
    levels: Sequence[Candle]
    analysis_close_ms: NDArray[np.int64]
    levels_close_ms: NDArray[np.int64]
    prices: PriceSeries


@dataclass(frozen=True, slots=True)
class MarketData:
    """Every symbol's candles for one evaluation."""

    analysis_timeframe: str
    levels_timeframe: str
    levels_resampled: bool
    symbols: Mapping[str, SymbolData]

    def timeline_close_ms(self) -> NDArray[np.int64]:
        """Close times of the analysis candles of every symbol, ascending, each once."""
        if not self.symbols:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([s.analysis_close_ms for s in self.symbols.values()]))


def resample(candles: Sequence[Candle], *, source_ms: int, target_ms: int) -> list[Candle]:
    """Candles of ``target_ms`` aggregated from complete runs of ``source_ms`` candles (epoch-aligned periods)."""
    if not candles:
        return []
    rows = np.array([(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume) for c in candles], dtype=np.float64)
    period = rows[:, 0].astype(np.int64) // target_ms
    starts, counts = np.unique(period, return_index=True, return_counts=True)[1:]
    ends = starts + counts - 1
    high = np.maximum.reduceat(rows[:, 2], starts)
    low = np.minimum.reduceat(rows[:, 3], starts)
    volume = np.add.reduceat(rows[:, 5], starts)
    complete = counts == target_ms // source_ms
    return [
        Candle(int(period[s]) * target_ms, float(rows[s, 1]), float(h), float(lo), float(rows[e, 4]), float(v))
        for s, e, h, lo, v, ok in zip(starts, ends, high, low, volume, complete, strict=True)
        if ok
    ]


def check_resample(*, source: str, target: str) -> None:
    """``DataError`` unless ``target`` candles can be built from ``source`` ones (a multiple that divides a day)."""
    source_ms, target_ms = timeframe_ms(source), timeframe_ms(target)
    if target_ms % source_ms or DAY_MS % target_ms:
        raise DataError(
            f"no {target} candle files and {target} candles cannot be resampled from {source} ones "
            f"(a levels timeframe must be a multiple of the analysis timeframe that divides a day)"
        )


def _close_ms(candles: Sequence[Candle], step_ms: int) -> NDArray[np.int64]:
    return np.array([c.open_time_ms + step_ms for c in candles], dtype=np.int64)


def market_data(
    analysis: Mapping[str, Sequence[Candle]],
    levels: Mapping[str, Sequence[Candle]] | None,
    *,
    analysis_timeframe: str,
    levels_timeframe: str,
) -> MarketData:
    """The evaluation's market: ``levels`` None means resample them from ``analysis`` (or share it, same timeframe)."""
    step_ms, levels_ms = timeframe_ms(analysis_timeframe), timeframe_ms(levels_timeframe)
    resampled = levels is None and levels_timeframe != analysis_timeframe
    if resampled:
        check_resample(source=analysis_timeframe, target=levels_timeframe)
    symbols = {}
    for symbol in sorted(analysis):
        own = list(analysis[symbol])
        if levels_timeframe == analysis_timeframe:
            theirs = own
        elif levels is None:
            theirs = resample(own, source_ms=step_ms, target_ms=levels_ms)
        else:
            theirs = list(levels.get(symbol, ()))
        symbols[symbol] = SymbolData(
            analysis=own,
            levels=theirs,
            analysis_close_ms=_close_ms(own, step_ms),
            levels_close_ms=_close_ms(theirs, levels_ms),
            prices=price_series(own, step_ms=step_ms),
        )
    return MarketData(analysis_timeframe, levels_timeframe, resampled, symbols)


def load_market(data: Path, *, analysis_timeframe: str, levels_timeframe: str) -> MarketData:
    """The candle files under ``data`` (``DIR/<timeframe>/`` or ``DIR``); levels resampled when they have none."""
    analysis = load_timeframe(data, timeframe=analysis_timeframe)
    if analysis is None:
        raise DataError(
            f"{data}: no BASE_QUOTE-{analysis_timeframe}.json or .json.gz files (nor in {analysis_timeframe}/)"
        )
    levels = None if levels_timeframe == analysis_timeframe else load_timeframe(data, timeframe=levels_timeframe)
    return market_data(analysis, levels, analysis_timeframe=analysis_timeframe, levels_timeframe=levels_timeframe)


@dataclass(frozen=True, slots=True)
class Holding:
    """What the worker holds at ``now_ms``: candles (symbol -> timeframe -> candles), tickers, each entry row."""

    now_ms: int
    candles: Mapping[str, Mapping[str, Sequence[Candle]]]
    tickers: Mapping[str, Ticker]
    entries: Mapping[str, int]  # symbol -> row of its entry candle (closed at now_ms) in its analysis series


def _closed(candles: Sequence[Candle], close_ms: NDArray[np.int64], *, now_ms: int, limit: int) -> Sequence[Candle]:
    end = int(np.searchsorted(close_ms, now_ms, side="right"))
    return candles[max(0, end - limit) : end]


def holding_at(market: MarketData, now_ms: int, *, lookback: int) -> Holding:
    """The last ``lookback`` candles of each timeframe closed by ``now_ms`` of every symbol trading at ``now_ms``."""
    step_ms = timeframe_ms(market.analysis_timeframe)
    candles: dict[str, dict[str, Sequence[Candle]]] = {}
    tickers: dict[str, Ticker] = {}
    entries: dict[str, int] = {}
    for symbol, data in market.symbols.items():
        end = int(np.searchsorted(data.analysis_close_ms, now_ms, side="right"))
        if end == 0 or int(data.analysis_close_ms[end - 1]) != now_ms:
            continue
        held = {market.analysis_timeframe: data.analysis[max(0, end - lookback) : end]}
        if market.levels_timeframe != market.analysis_timeframe:
            held[market.levels_timeframe] = _closed(data.levels, data.levels_close_ms, now_ms=now_ms, limit=lookback)
        ticker = ticker_from_candles(symbol, held[market.analysis_timeframe], step_ms=step_ms, now_ms=now_ms)
        candles[symbol], entries[symbol] = held, end - 1
        if ticker is not None:
            tickers[symbol] = ticker
    return Holding(now_ms=now_ms, candles=candles, tickers=tickers, entries=entries)


def fit_candles(market: MarketData, fit_ms: int, *, history_candles: int) -> dict[str, Sequence[Candle]]:
    """The newest ``history_candles`` analysis candles closed by ``fit_ms`` of every symbol that has any."""
    out: dict[str, Sequence[Candle]] = {}
    for symbol, data in market.symbols.items():
        held = _closed(data.analysis, data.analysis_close_ms, now_ms=fit_ms, limit=history_candles)
        if held:
            out[symbol] = held
    return out
