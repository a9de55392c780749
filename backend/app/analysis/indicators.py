"""Technical indicators as pure functions over float arrays along axis 0 (one row per candle, oldest first).

Every function accepts a 1-D series or a 2-D matrix (candles x symbols) and treats each column on its own, so a
whole universe is computed in one vectorised pass; shorter series are padded with leading ``NaN``.

Invariants:
- Causal: the value at index ``t`` depends only on inputs at indexes ``<= t``; computing on ``x[:n]`` gives the
  same values at indexes ``< n`` as computing on ``x``. Swing points are the one look-ahead structure: a swing at
  index ``i`` needs bars ``i-k .. i+k``, so it is *confirmed* at index ``i+k`` and the last ``k`` bars are never
  swings (no repainting).
- Warm-up: every output has the input's length; indexes without enough history are ``NaN``.
- Recursive averages (EMA, Wilder) are seeded with the simple mean of their first ``period`` values, the
  textbook convention (EMA: alpha = 2 / (span + 1); Wilder: alpha = 1 / period).
- Units: prices in the input's currency; RSI and %B as 0..100 and 0..1 (``%B`` may leave 0..1 outside the bands);
  ``realised_volatility`` is the sample standard deviation of per-candle log returns (a fraction per candle,
  not annualised); ``price_change_pct`` is percent.
- Inputs are finite after an optional run of leading ``NaN`` per column; nothing here raises for short inputs.
- Rolling windows are summed as shifted slices in a fixed order, so a value is bit-identical however many
  candles follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce
from typing import NamedTuple

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


class MacdLines(NamedTuple):
    """MACD line (fast EMA - slow EMA), its signal line (EMA of the MACD line) and the histogram (difference)."""

    macd: FloatArray
    signal: FloatArray
    histogram: FloatArray


class SwingPoints(NamedTuple):
    """Indexes of swing lows and swing highs, ascending."""

    lows: IntArray
    highs: IntArray


def _nan_like(values: FloatArray) -> FloatArray:
    return np.full(values.shape, np.nan, dtype=np.float64)


def shift(values: FloatArray, *, periods: int = 1) -> FloatArray:
    """``values`` moved ``periods`` rows later, the first rows ``NaN``."""
    out = _nan_like(values)
    if 0 < periods < values.shape[0]:
        out[periods:] = values[:-periods]
    return out


def _rolling(values: FloatArray, window: int, combine: Callable[[Sequence[FloatArray]], FloatArray]) -> FloatArray:
    out = _nan_like(values)
    rows = values.shape[0] - window + 1
    if rows > 0:
        out[window - 1 :] = combine([values[j : j + rows] for j in range(window)])
    return out


def _sum(parts: Sequence[FloatArray]) -> FloatArray:
    return reduce(np.add, parts)


def rolling_mean(values: FloatArray, *, window: int) -> FloatArray:
    """Mean of the last ``window`` values (the current one included)."""
    return _rolling(values, window, lambda parts: _sum(parts) / window)


def rolling_std(values: FloatArray, *, window: int, ddof: int = 0) -> FloatArray:
    """Standard deviation of the last ``window`` values (two-pass, numerically stable)."""

    def combine(parts: Sequence[FloatArray]) -> FloatArray:
        mean = _sum(parts) / window
        squares = _sum([(part - mean) ** 2 for part in parts])
        return np.asarray(np.sqrt(squares / (window - ddof)), dtype=np.float64)

    return _rolling(values, window, combine)


def rolling_max(values: FloatArray, *, window: int) -> FloatArray:
    """Maximum of the last ``window`` values (the current one included)."""
    return _rolling(values, window, lambda parts: reduce(np.maximum, parts))


def seeded_recursive_mean(values: FloatArray, *, alpha: float, seed_len: int) -> FloatArray:
    """Per column: mean of the first ``seed_len`` finite values, then ``y[t] = (1 - alpha) * y[t-1] + alpha * x[t]``.

    One vectorised step per row over all columns (a column joins at its seed row), the same recurrence in the same
    order as a per-column loop, so values are bit-identical to it.
    """
    matrix = values.reshape(values.shape[0], -1)
    finite = np.isfinite(matrix)
    seed_row = np.argmax(finite, axis=0) + seed_len - 1
    columns = np.flatnonzero(finite.any(axis=0) & (seed_row < matrix.shape[0]))
    out = np.full(matrix.shape, np.nan)
    if columns.size == 0:
        return out.reshape(values.shape)
    seeds = rolling_mean(matrix, window=seed_len)[seed_row[columns], columns]
    joining: dict[int, tuple[list[int], list[float]]] = {}
    for column, row, seed in zip(columns.tolist(), seed_row[columns].tolist(), seeds.tolist(), strict=True):
        joining.setdefault(row, ([], []))
        joining[row][0].append(column)
        joining[row][1].append(seed)
    state = np.full(matrix.shape[1], np.nan)
    keep = 1.0 - alpha
    for row in range(min(joining), matrix.shape[0]):
        state = state * keep + matrix[row] * alpha
        if row in joining:
            state[joining[row][0]] = joining[row][1]
        out[row] = state
    return out.reshape(values.shape)


def ema(values: FloatArray, *, span: int) -> FloatArray:
    """Exponential moving average (alpha = 2 / (span + 1)), seeded with the SMA of the first ``span`` values."""
    return seeded_recursive_mean(values, alpha=2.0 / (span + 1), seed_len=span)


def rsi_wilder(close: FloatArray, *, period: int = 14) -> FloatArray:
    """Wilder's RSI in 0..100; 100 when there were only gains, 0 only losses, 50 when flat."""
    delta = close - shift(close)
    avg_gain = seeded_recursive_mean(np.clip(delta, 0.0, None), alpha=1.0 / period, seed_len=period)
    avg_loss = seeded_recursive_mean(np.clip(-delta, 0.0, None), alpha=1.0 / period, seed_len=period)
    total = avg_gain + avg_loss
    rsi: FloatArray = np.divide(100.0 * avg_gain, total, out=np.full(close.shape, 50.0), where=total > 0)
    rsi[~np.isfinite(total)] = np.nan
    return rsi


def macd(close: FloatArray, *, fast: int = 12, slow: int = 26, signal: int = 9) -> MacdLines:
    """MACD line, signal line (EMA ``signal`` of the MACD line) and histogram; valid from index slow+signal-2."""
    line = ema(close, span=fast) - ema(close, span=slow)
    signal_line = ema(line, span=signal)
    return MacdLines(macd=line, signal=signal_line, histogram=line - signal_line)


def bollinger_percent_b(close: FloatArray, *, period: int = 20, num_std: float = 2.0) -> FloatArray:
    """Bollinger %B: (close - lower) / (upper - lower) with population std; 0.5 when the bands have no width."""
    mean = rolling_mean(close, window=period)
    width = 2.0 * num_std * rolling_std(close, window=period, ddof=0)
    lower = mean - width / 2.0
    out: FloatArray = np.divide(close - lower, width, out=np.full(close.shape, 0.5), where=width > 0)
    out[np.isnan(width)] = np.nan
    return out


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """True range; the first bar, which has no previous close, uses high - low."""
    prev_close = shift(close)
    return np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))


def atr(high: FloatArray, low: FloatArray, close: FloatArray, *, period: int = 14) -> FloatArray:
    """Wilder's average true range, seeded with the mean of the first ``period`` true ranges."""
    return seeded_recursive_mean(true_range(high, low, close), alpha=1.0 / period, seed_len=period)


def volume_ratio(volume: FloatArray, *, period: int = 20) -> FloatArray:
    """Each candle's volume divided by the mean volume of the ``period`` candles before it (NaN if that is 0)."""
    previous_mean = shift(rolling_mean(volume, window=period))
    out: FloatArray = np.divide(volume, previous_mean, out=_nan_like(volume), where=previous_mean > 0)
    return out


def log_returns(close: FloatArray) -> FloatArray:
    """Per-candle log returns; the first row is NaN."""
    return np.asarray(np.log(close / shift(close)), dtype=np.float64)


def realised_volatility(close: FloatArray, *, window: int = 24) -> FloatArray:
    """Sample std of the last ``window`` per-candle log returns (a fraction per candle, not annualised)."""
    return rolling_std(log_returns(close), window=window, ddof=1)


def price_change_pct(close: FloatArray, *, periods: int) -> FloatArray:
    """Percent change of the close over ``periods`` candles."""
    return (close / shift(close, periods=periods) - 1.0) * 100.0


def ema_distance_pct(close: FloatArray, *, span: int, ema_values: FloatArray | None = None) -> FloatArray:
    """Percent distance of the close from its EMA ``span``: (close / EMA - 1) * 100 (``ema_values``: that EMA)."""
    average = ema(close, span=span) if ema_values is None else ema_values
    return (close / average - 1.0) * 100.0


def volume_zscore(volume: FloatArray, *, period: int = 20) -> FloatArray:
    """(volume - mean) / population std of the ``period`` candles before it; 0 when those had no spread."""
    previous_mean = shift(rolling_mean(volume, window=period))
    previous_std = shift(rolling_std(volume, window=period, ddof=0))
    out: FloatArray = np.divide(
        volume - previous_mean, previous_std, out=np.zeros(volume.shape), where=previous_std > 0
    )
    out[~np.isfinite(previous_std)] = np.nan
    return out


def obv(close: FloatArray, volume: FloatArray) -> FloatArray:
    """On-balance volume: cumulative sum of +volume on up closes, -volume on down closes, from 0 at the first close."""
    direction = np.sign(close - shift(close))
    signed = np.where(np.isfinite(direction), direction * volume, np.where(np.isfinite(close), 0.0, np.nan))
    return np.asarray(pd.DataFrame(signed.reshape(close.shape[0], -1)).cumsum().to_numpy().reshape(close.shape))


def momentum(close: FloatArray, *, periods: int) -> FloatArray:
    """Log return over ``periods`` candles: ln(close[t] / close[t - periods])."""
    return np.asarray(np.log(close / shift(close, periods=periods)), dtype=np.float64)


def drawdown(high: FloatArray, close: FloatArray, *, window: int) -> FloatArray:
    """Fraction below the highest high of the last ``window`` candles: 1 - close / max(high), in [0, 1)."""
    return 1.0 - close / rolling_max(high, window=window)


def swing_points(high: FloatArray, low: FloatArray, *, k: int = 3) -> SwingPoints:
    """Swing lows/highs of a 1-D series: the extreme of bars ``i-k .. i+k`` (ties go to the first bar)."""
    n = high.shape[0]
    if n < 2 * k + 1:
        empty = np.empty(0, dtype=np.intp)
        return SwingPoints(lows=empty, highs=empty.copy())
    is_low = np.ones(n - 2 * k, dtype=bool)
    is_high = np.ones(n - 2 * k, dtype=bool)
    centre_low, centre_high = low[k : n - k], high[k : n - k]
    for j in range(1, k + 1):
        is_low &= (centre_low < low[k - j : n - k - j]) & (centre_low <= low[k + j : n - k + j])
        is_high &= (centre_high > high[k - j : n - k - j]) & (centre_high >= high[k + j : n - k + j])
    return SwingPoints(
        lows=np.asarray(np.flatnonzero(is_low) + k, dtype=np.intp),
        highs=np.asarray(np.flatnonzero(is_high) + k, dtype=np.intp),
    )
