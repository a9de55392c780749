"""Per-symbol indicator snapshot at the last closed candle, the input of ranking and market status.

Invariants:
- ``candle_arrays`` turns domain candles into float arrays; ``check_series`` reports (never raises) why a series
  cannot be analysed: too short, not strictly ascending, or a non-positive / non-finite price (open, high, low or
  close). A NaN volume is an unknown volume, not an error: the candle is a valid price candle.
- Unknown volume never spreads: ``volume_24h`` without a ticker is the quote volume of the last day's candles whose
  volume is known, scaled up to the whole window (NaN only when none is known); a non-finite ticker value is
  ignored. Volume indicators of a symbol are NaN (missing factors) only in windows that hold an unknown volume.
- ``compute_indicators`` reads only the candles given, so its values depend only on candles that closed at or
  before each symbol's last one (causal); symbols are independent columns of one vectorised computation.
- ``MIN_CANDLES`` (35) is what the slowest indicator (the MACD 12/26/9 histogram, first at index 33) needs, plus
  one.
- Units: prices in the quote currency; ``volatility`` is the std of per-candle log returns as a fraction;
  ``drawdown`` is a fraction of the 30-candle high; ``*_pct`` fields are percent; ``volume_24h`` is quote volume;
  ``momentum`` holds log returns over ``MOMENTUM_PERIODS`` candles, ``returns`` over ``REVERSAL_PERIODS``;
  ``close_position`` is where the last close sits in its candle's range (0 at the low, 1 at the high). A value whose
  warm-up the symbol's history does not cover is NaN (never an error): the ranking treats it as a missing factor.
- ``indicator_matrices`` is the one definition of every indicator over a (candles x symbols) matrix; the snapshot
  at the last candle (``compute_indicators``) and the history the model is fitted on (``app.analysis.panel``) both
  read it.
"""

from __future__ import annotations

import itertools
import math
import operator
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
SLOW_EMA_SPAN = 50
OBV_TREND_PERIODS = 20
MOMENTUM_PERIODS = (6, 24, 72)
REVERSAL_PERIODS = (1, 4, 24)  # log returns the short-term reversal factors read
VOLATILITY_LONG_WINDOW = 168  # a week of hours
WINDOW_TAIL = 256  # > every fixed window (+1 for shifted ones), so the last row equals the full computation
MIN_CANDLES = MACD_SLOW + MACD_SIGNAL  # 35: one more than the first MACD histogram value needs
DAY_MS = 86_400_000
_CANDLE_FIELDS = operator.attrgetter("open_time_ms", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class CandleArrays:
    """One symbol's candles as columns (oldest first); ``volume`` may hold NaN (unknown), prices may not."""

    open_time_ms: NDArray[np.int64]
    open: ind.FloatArray
    high: ind.FloatArray
    low: ind.FloatArray
    close: ind.FloatArray
    volume: ind.FloatArray

    def __len__(self) -> int:
        return int(self.close.size)

    def __getitem__(self, rows: slice) -> CandleArrays:
        """The candles of ``rows`` (a slice), as their own series."""
        return CandleArrays(
            open_time_ms=self.open_time_ms[rows],
            open=self.open[rows],
            high=self.high[rows],
            low=self.low[rows],
            close=self.close[rows],
            volume=self.volume[rows],
        )


@dataclass(frozen=True, slots=True)
class SymbolIndicators:
    """Indicator values of one symbol at its last closed candle (NaN where the history is too short)."""

    symbol: str
    close: float
    close_time_ms: int
    candles: int  # how many analysis candles the symbol had
    rsi: float
    macd: float
    macd_signal: float
    macd_hist: float
    atr: float
    atr_pct: float  # ATR14 / close * 100
    percent_b: float
    volume_ratio: float  # NaN when the previous candles had no volume
    volume_z: float  # volume z-score against the previous VOLUME_PERIOD candles
    obv_trend: float  # OBV change over OBV_TREND_PERIODS candles / volume traded in them, in [-1, 1]
    volatility: float  # std of per-candle log returns, fraction
    change_24_candles_pct: float
    momentum: tuple[float, ...]  # log returns over MOMENTUM_PERIODS candles
    drawdown: float  # 1 - close / highest high of the last DRAWDOWN_WINDOW candles
    returns: tuple[float, ...]  # log returns over REVERSAL_PERIODS candles
    volatility_long: float  # std of per-candle log returns over VOLATILITY_LONG_WINDOW candles
    close_position: float  # (close - low) / (high - low) of the last candle; 0.5 for a candle without range
    ema20: float
    ema50: float
    ema20_distance_pct: float
    ema50_distance_pct: float
    price_change_24h_pct: float
    volume_24h: float  # quote currency


@dataclass(frozen=True, slots=True)
class IndicatorPanel:
    """Per-symbol metrics, their last-row indicator values by name (one entry per symbol, in order) and the
    universe's median ATR% per candle (its own history, oldest first)."""

    metrics: list[SymbolIndicators]
    last_rows: dict[str, ind.FloatArray]
    median_atr_pct_history: ind.FloatArray


def candle_arrays(candles: Sequence[Candle]) -> CandleArrays:
    """Columns of ``candles`` as numpy arrays."""
    # Millisecond timestamps are below 2**53, so they survive the float64 round trip exactly.
    values = itertools.chain.from_iterable(map(_CANDLE_FIELDS, candles))
    rows = np.fromiter(values, dtype=np.float64, count=6 * len(candles)).reshape(-1, 6)
    return CandleArrays(
        open_time_ms=rows[:, 0].astype(np.int64),
        open=np.ascontiguousarray(rows[:, 1]),
        high=np.ascontiguousarray(rows[:, 2]),
        low=np.ascontiguousarray(rows[:, 3]),
        close=np.ascontiguousarray(rows[:, 4]),
        volume=np.ascontiguousarray(rows[:, 5]),
    )


def check_series(arrays: CandleArrays, *, min_candles: int) -> str | None:
    """Why this series cannot be analysed, or None when it can (an unknown, NaN, volume is allowed)."""
    if len(arrays) < min_candles:
        return f"too few candles: {len(arrays)} < {min_candles} needed"
    if np.any(np.diff(arrays.open_time_ms) <= 0):
        return "candles are not strictly ascending by open time"
    prices = np.concatenate((arrays.open, arrays.high, arrays.low, arrays.close))
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


def _recursive_matrices(high: ind.FloatArray, low: ind.FloatArray, close: ind.FloatArray) -> dict[str, ind.FloatArray]:
    """Indicators that depend on the whole history (recursive averages), full length."""
    lines = ind.macd(close, fast=MACD_FAST, slow=MACD_SLOW, signal=MACD_SIGNAL)
    atr = ind.atr(high, low, close, period=ATR_PERIOD)
    ema20, ema50 = ind.ema(close, span=BREADTH_EMA_SPAN), ind.ema(close, span=SLOW_EMA_SPAN)
    return {
        "rsi": ind.rsi_wilder(close, period=RSI_PERIOD),
        "macd": lines.macd,
        "macd_signal": lines.signal,
        "macd_hist": lines.histogram,
        "atr": atr,
        "atr_pct": atr / close * 100.0,
        "ema20": ema20,
        "ema50": ema50,
        "ema20_distance_pct": ind.ema_distance_pct(close, span=BREADTH_EMA_SPAN, ema_values=ema20),
        "ema50_distance_pct": ind.ema_distance_pct(close, span=SLOW_EMA_SPAN, ema_values=ema50),
    }


def _close_position(high: ind.FloatArray, low: ind.FloatArray, close: ind.FloatArray) -> ind.FloatArray:
    span = high - low
    neutral = np.where(np.isfinite(span), 0.5, np.nan)
    return np.divide(close - low, span, out=neutral, where=span > 0)


def _window_matrices(
    high: ind.FloatArray, low: ind.FloatArray, close: ind.FloatArray, volume: ind.FloatArray, *, per_day: int
) -> dict[str, ind.FloatArray]:
    """Indicators over fixed windows; their last row only needs the last ``WINDOW_TAIL`` rows of input."""
    obv_change = ind.obv(close, volume) - ind.shift(ind.obv(close, volume), periods=OBV_TREND_PERIODS)
    traded = ind.rolling_mean(volume, window=OBV_TREND_PERIODS) * OBV_TREND_PERIODS
    out = {
        "percent_b": ind.bollinger_percent_b(close, period=BOLLINGER_PERIOD, num_std=BOLLINGER_STD),
        "volume_ratio": ind.volume_ratio(volume, period=VOLUME_PERIOD),
        "volume_z": ind.volume_zscore(volume, period=VOLUME_PERIOD),
        "obv_trend": np.divide(obv_change, traded, out=np.full(close.shape, np.nan), where=traded > 0),
        "volatility": ind.realised_volatility(close, window=VOLATILITY_WINDOW),
        "volatility_long": ind.realised_volatility(close, window=VOLATILITY_LONG_WINDOW),
        "change_24_candles_pct": ind.price_change_pct(close, periods=CHANGE_PERIODS),
        "drawdown": ind.drawdown(high, close, window=DRAWDOWN_WINDOW),
        "close_position": _close_position(high, low, close),
        "quote_volume_24h": ind.rolling_mean(close * volume, window=per_day) * per_day,
    }
    for periods in sorted({*MOMENTUM_PERIODS, *REVERSAL_PERIODS}):
        out[f"log_return_{periods}"] = ind.momentum(close, periods=periods)
    return out


def indicator_matrices(
    high: ind.FloatArray,
    low: ind.FloatArray,
    close: ind.FloatArray,
    volume: ind.FloatArray,
    *,
    timeframe: str,
    tail_rows: int | None = None,
    recursive: Mapping[str, ind.FloatArray] | None = None,
) -> dict[str, ind.FloatArray]:
    """Every indicator as a (candles x symbols) matrix; with ``tail_rows`` only the last rows (>= WINDOW_TAIL).

    ``recursive`` passes the full-history recursive indicators when the caller already computed them.
    """
    full = recursive if recursive is not None else _recursive_matrices(high, low, close)
    rows = slice(-tail_rows, None) if tail_rows else slice(None)
    windowed = _window_matrices(high[rows], low[rows], close[rows], volume[rows], per_day=candles_per_day(timeframe))
    return {name: values[rows] for name, values in full.items()} | windowed


def compute_indicators(
    series: Mapping[str, CandleArrays], *, timeframe: str, tickers: Mapping[str, Ticker]
) -> IndicatorPanel:
    """Indicator values at each symbol's last candle, all symbols in one vectorised pass (series checked)."""
    symbols = list(series)
    high, low, close, volume = (
        stack_right_aligned([getattr(series[s], name) for s in symbols]) for name in ("high", "low", "close", "volume")
    )
    recursive = _recursive_matrices(high, low, close)
    matrices = indicator_matrices(
        high, low, close, volume, timeframe=timeframe, tail_rows=WINDOW_TAIL, recursive=recursive
    )
    last = {name: values[-1] for name, values in matrices.items()}
    last["quote_volume_24h"] = np.array(
        [_volume_24h(series[s], timeframe=timeframe, ticker=tickers.get(s)) for s in symbols]
    )
    metrics = [
        _symbol(symbol, index, series[symbol], last, timeframe=timeframe, ticker=tickers.get(symbol))
        for index, symbol in enumerate(symbols)
    ]
    median_atr = _nan_median_rows(recursive["atr_pct"])
    return IndicatorPanel(metrics=metrics, last_rows=last, median_atr_pct_history=median_atr)


_SNAPSHOT_FIELDS = (
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "atr",
    "atr_pct",
    "percent_b",
    "volume_ratio",
    "volume_z",
    "obv_trend",
    "volatility",
    "volatility_long",
    "change_24_candles_pct",
    "drawdown",
    "ema20",
    "ema50",
    "ema20_distance_pct",
    "ema50_distance_pct",
    "close_position",
)


def _symbol(
    symbol: str,
    index: int,
    arrays: CandleArrays,
    last: Mapping[str, ind.FloatArray],
    *,
    timeframe: str,
    ticker: Ticker | None,
) -> SymbolIndicators:
    return SymbolIndicators(
        symbol=symbol,
        close=float(arrays.close[-1]),
        close_time_ms=int(arrays.open_time_ms[-1]) + timeframe_ms(timeframe),
        candles=len(arrays),
        momentum=tuple(float(last[f"log_return_{p}"][index]) for p in MOMENTUM_PERIODS),
        returns=tuple(float(last[f"log_return_{p}"][index]) for p in REVERSAL_PERIODS),
        **{name: float(last[name][index]) for name in _SNAPSHOT_FIELDS},
        price_change_24h_pct=_change_24h_pct(arrays.close, timeframe=timeframe, ticker=ticker),
        volume_24h=float(last["quote_volume_24h"][index]),
    )


def _nan_median_rows(matrix: ind.FloatArray) -> ind.FloatArray:
    """Row-wise median over the finite entries (NaN for rows with none)."""
    out = np.full(matrix.shape[0], np.nan)
    has_value = np.isfinite(matrix).any(axis=1)
    if has_value.any():
        out[has_value] = np.nanmedian(matrix[has_value], axis=1)
    return out


def _last(values: ind.FloatArray) -> float:
    return float(values[-1])


def _known(value: float | None) -> float | None:
    """``value`` when it is a finite number, else None (a ticker field the exchange left empty or NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _change_24h_pct(close: ind.FloatArray, *, timeframe: str, ticker: Ticker | None) -> float:
    change = None if ticker is None else _known(ticker.change_24h_pct)
    if change is not None:
        return change
    periods = min(candles_per_day(timeframe), close.size - 1)
    return _last(ind.price_change_pct(close, periods=periods))


def _volume_24h(arrays: CandleArrays, *, timeframe: str, ticker: Ticker | None) -> float:
    quoted = None if ticker is None else _known(ticker.quote_volume_24h)
    if quoted is not None:
        return quoted
    window = candles_per_day(timeframe)
    traded = arrays.close[-window:] * arrays.volume[-window:]
    known = np.isfinite(traded)
    if known.all():
        return float(np.sum(traded))
    return float(np.sum(traded[known]) * traded.size / known.sum()) if known.any() else math.nan
