"""Per-symbol indicator snapshot at the last closed candle, the input of ranking and market status.

Invariants:
- ``candle_arrays`` turns domain candles into float arrays; ``check_series`` reports (never raises) why a series
  cannot be analysed: too short, not strictly ascending, or a non-positive / non-finite price.
- ``compute_metrics`` reads only the candles given, so its values depend only on candles that closed at or
  before each symbol's last one (causal); symbols are independent columns of one vectorised computation.
- ``MIN_CANDLES`` (35) is what the slowest indicator (the MACD 12/26/9 histogram, first at index 33) needs, plus
  one.
- Units: prices in the quote currency; ``volatility`` is the std of per-candle log returns as a fraction;
  ``drawdown`` is a fraction of the 30-candle high; ``*_pct`` fields are percent; ``volume_24h`` is quote volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.analysis import indicators as ind
from app.domain import Candle, Ticker, timeframe_ms

RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BOLLINGER_PERIOD, BOLLINGER_STD = 20, 2.0
ATR_PERIOD = 14
VOLUME_PERIOD = 20
VOLATILITY_WINDOW = 24
CHANGE_PERIODS = 24
DRAWDOWN_WINDOW = 30
BREADTH_EMA_SPAN = 20
MIN_CANDLES = MACD_SLOW + MACD_SIGNAL  # 35: one more than the first MACD histogram value needs
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class CandleArrays:
    """One symbol's candles as columns (oldest first)."""

    open_time_ms: NDArray[np.int64]
    high: ind.FloatArray
    low: ind.FloatArray
    close: ind.FloatArray
    volume: ind.FloatArray

    def __len__(self) -> int:
        return int(self.close.size)


@dataclass(frozen=True, slots=True)
class SymbolMetrics:
    """Indicator values of one symbol at its last closed candle."""

    symbol: str
    close: float
    close_time_ms: int
    rsi: float
    macd: float
    macd_signal: float
    macd_hist: float
    atr: float
    percent_b: float
    volume_ratio: float  # NaN when the previous candles had no volume
    volatility: float  # std of per-candle log returns, fraction
    change_24_candles_pct: float
    drawdown: float  # 1 - close / highest high of the last DRAWDOWN_WINDOW candles
    ema20: float
    price_change_24h_pct: float
    volume_24h: float  # quote currency


def candle_arrays(candles: Sequence[Candle]) -> CandleArrays:
    """Columns of ``candles`` as numpy arrays."""
    # Millisecond timestamps are below 2**53, so they survive the float64 round trip exactly.
    rows = np.array([(c.open_time_ms, c.high, c.low, c.close, c.volume) for c in candles], dtype=np.float64)
    rows = rows.reshape(-1, 5)
    return CandleArrays(
        open_time_ms=rows[:, 0].astype(np.int64),
        high=np.ascontiguousarray(rows[:, 1]),
        low=np.ascontiguousarray(rows[:, 2]),
        close=np.ascontiguousarray(rows[:, 3]),
        volume=np.ascontiguousarray(rows[:, 4]),
    )


def check_series(arrays: CandleArrays, *, min_candles: int) -> str | None:
    """Why this series cannot be analysed, or None when it can."""
    if len(arrays) < min_candles:
        return f"too few candles: {len(arrays)} < {min_candles} needed"
    if np.any(np.diff(arrays.open_time_ms) <= 0):
        return "candles are not strictly ascending by open time"
    prices = np.concatenate((arrays.high, arrays.low, arrays.close))
    if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
        return "non-positive or non-finite price"
    return None


def candles_per_day(timeframe: str) -> int:
    """How many candles of ``timeframe`` make up 24 hours (at least one)."""
    return max(1, DAY_MS // timeframe_ms(timeframe))


def stack_right_aligned(columns: Sequence[ind.FloatArray]) -> ind.FloatArray:
    """Columns of different lengths as one (candles x symbols) matrix, last rows aligned, leading rows NaN."""
    rows = max(column.size for column in columns)
    matrix = np.full((rows, len(columns)), np.nan)
    for index, column in enumerate(columns):
        matrix[rows - column.size :, index] = column
    return matrix


def compute_metrics(
    series: Mapping[str, CandleArrays], *, timeframe: str, tickers: Mapping[str, Ticker]
) -> list[SymbolMetrics]:
    """Indicator values at each symbol's last candle, all symbols in one vectorised pass (series checked)."""
    symbols = list(series)
    high, low, close, volume = (
        stack_right_aligned([getattr(series[s], name) for s in symbols]) for name in ("high", "low", "close", "volume")
    )
    lines = ind.macd(close, fast=MACD_FAST, slow=MACD_SLOW, signal=MACD_SIGNAL)
    last = {
        "rsi": ind.rsi_wilder(close, period=RSI_PERIOD)[-1],
        "macd": lines.macd[-1],
        "macd_signal": lines.signal[-1],
        "macd_hist": lines.histogram[-1],
        "atr": ind.atr(high, low, close, period=ATR_PERIOD)[-1],
        "percent_b": ind.bollinger_percent_b(close, period=BOLLINGER_PERIOD, num_std=BOLLINGER_STD)[-1],
        "volume_ratio": ind.volume_ratio(volume, period=VOLUME_PERIOD)[-1],
        "volatility": ind.realised_volatility(close, window=VOLATILITY_WINDOW)[-1],
        "change_24_candles_pct": ind.price_change_pct(close, periods=CHANGE_PERIODS)[-1],
        "drawdown": 1.0 - close[-1] / ind.rolling_max(high, window=DRAWDOWN_WINDOW)[-1],
        "ema20": ind.ema(close, span=BREADTH_EMA_SPAN)[-1],
    }
    return [
        SymbolMetrics(
            symbol=symbol,
            close=float(close[-1, index]),
            close_time_ms=int(series[symbol].open_time_ms[-1]) + timeframe_ms(timeframe),
            **{name: float(values[index]) for name, values in last.items()},
            price_change_24h_pct=_change_24h_pct(series[symbol].close, timeframe=timeframe, ticker=tickers.get(symbol)),
            volume_24h=_volume_24h(series[symbol], timeframe=timeframe, ticker=tickers.get(symbol)),
        )
        for index, symbol in enumerate(symbols)
    ]


def _last(values: ind.FloatArray) -> float:
    return float(values[-1])


def _change_24h_pct(close: ind.FloatArray, *, timeframe: str, ticker: Ticker | None) -> float:
    if ticker is not None and ticker.change_24h_pct is not None:
        return float(ticker.change_24h_pct)
    periods = min(candles_per_day(timeframe), close.size - 1)
    return _last(ind.price_change_pct(close, periods=periods))


def _volume_24h(arrays: CandleArrays, *, timeframe: str, ticker: Ticker | None) -> float:
    if ticker is not None and ticker.quote_volume_24h is not None:
        return float(ticker.quote_volume_24h)
    window = candles_per_day(timeframe)
    return float(np.sum(arrays.close[-window:] * arrays.volume[-window:]))
