"""What served scores, labels and levels turned out to be worth: the per-period outcome definitions.

One definition for ``dantaro evaluate`` and the track record (docs/analysis.md §5). A period is one cross-section:
the symbols analysed at one time, each entered at the close of its last candle (the entry candle).

- Forward return over h candles: ``ln(close[exit] / close[entry])`` on the symbol's own series, where the exit
  candle opened exactly ``h`` candles after the entry candle (NaN without it). With ``delay`` d the entry is the
  candle d candles later (entry one candle late, the sensitivity check). A window holding a price discontinuity
  (``app.analysis.hazards.discontinuities``: a redenomination or relisting, never a market move) gives NaN: it is
  excluded, not scored.
- IC: Spearman rank correlation of a signal with the forward returns across the symbols with both values
  (``app.analysis.statistics.row_ic``; NaN below its ``MIN_SYMBOLS`` pairs or for a constant side).
- Per symbol with a return: its percentile in the cross-section (0 lowest .. 100 highest; 50 = the middle, no
  skill), its log excess return (return minus the cross-section's mean return), whether it beats the median.
- Top-N excess: mean log excess return of the N best-scored symbols that have a return (NaN with fewer than N);
  N in ``TOP_COUNTS`` (5 and 10).
- Per label (``label_stats``, every ``Label``): over the symbols of that label with a known return, their count and
  mean forward return, mean log excess return, mean percentile and share beating the median (NaN when none).
- A level is touched when, within ``window`` candles after the entry candle, a low (support) or a high
  (resistance) reaches its price; it bounced when the close ``BOUNCE_CANDLES`` candles after the first touch is back
  on the level's original side (support: above it). Judged only when the whole reach (window + bounce candles)
  exists and holds no discontinuity.
- A scoring window (``window_problem``, the track record): the entry candle and the ``candles`` after it must all
  be there (a missing one is a candle gap) and hold no discontinuity after the entry, else the symbol is excluded
  with the reason. ``entry_atr`` is the mean true range of the ``ATR_PERIOD`` candles ending at the entry candle
  (each against its previous close), NaN unless those candles and the one before them are there with no
  discontinuity among them.
Pure functions of arrays: no I/O, nothing read beyond the windows named above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.analysis import indicators as ind
from app.analysis.hazards import discontinuities
from app.analysis.statistics import MIN_SYMBOLS, beats_median, row_ic, row_percentiles
from app.analysis.symbol_indicators import CandleArrays, candle_arrays
from app.domain import Candle, Label, ms_to_datetime

BOUNCE_CANDLES = 3
TOP_COUNTS = (5, 10)
LABELS = tuple(Label)
ATR_PERIOD = 14


def price_breaks(arrays: CandleArrays) -> NDArray[np.bool_]:
    """True at each candle where a price discontinuity lies between its close and the previous one."""
    marks = np.zeros(len(arrays), dtype=bool)
    for found in discontinuities(arrays):
        marks[found.index] = True
    return marks


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """One symbol's candles as arrays (ascending open times, one candle every ``step_ms`` where none is missing)."""

    open_ms: NDArray[np.int64]
    high: ind.FloatArray
    low: ind.FloatArray
    close: ind.FloatArray
    step_ms: int
    breaks_before: NDArray[np.int64]  # how many discontinuities lie at or before each row

    def row_at(self, open_ms: int) -> int | None:
        """The row of the candle that opened at ``open_ms``, None without one."""
        row = int(np.searchsorted(self.open_ms, open_ms))
        return row if row < self.open_ms.size and int(self.open_ms[row]) == open_ms else None

    def clean(self, first: int, last: int) -> bool:
        """Whether no discontinuity lies between the closes of rows ``first`` and ``last``."""
        return int(self.breaks_before[last]) == int(self.breaks_before[first])


def price_series(candles: Sequence[Candle], *, step_ms: int) -> PriceSeries:
    """The arrays of ``candles`` (ascending) for the outcome functions."""
    arrays = candle_arrays(candles)
    return PriceSeries(
        open_ms=arrays.open_time_ms,
        high=arrays.high,
        low=arrays.low,
        close=arrays.close,
        step_ms=step_ms,
        breaks_before=np.cumsum(price_breaks(arrays)).astype(np.int64),
    )


def forward_return(series: PriceSeries, entry: int, *, candles: int, delay: int = 0) -> float:
    """Log return from the close ``delay`` candles after row ``entry`` to the close ``candles`` candles later."""
    start_ms = int(series.open_ms[entry]) + delay * series.step_ms
    first = series.row_at(start_ms) if delay else entry
    last = series.row_at(start_ms + candles * series.step_ms)
    if first is None or last is None or not series.clean(first, last):
        return math.nan
    return float(math.log(series.close[last] / series.close[first]))


def information_coefficients(signals: ind.FloatArray, returns: ind.FloatArray) -> ind.FloatArray:
    """The IC of each signal (rows of ``signals``, symbols along columns) with ``returns`` (one per symbol)."""
    matrix = np.atleast_2d(signals)
    paired = np.isfinite(matrix) & np.isfinite(returns)
    usable = np.sum(paired, axis=1) >= MIN_SYMBOLS  # rows below it are NaN anyway: spare row_ic the empty rows
    out = np.full(matrix.shape[0], np.nan)
    if usable.any():
        out[usable] = row_ic(matrix[usable], np.broadcast_to(returns, matrix[usable].shape))
    return out


@dataclass(frozen=True, slots=True)
class CrossSection:
    """Per symbol (NaN where its return is unknown): return percentile 0..100, log excess return, beats median."""

    percentile: ind.FloatArray
    excess: ind.FloatArray
    beats: ind.FloatArray


def cross_section(returns: ind.FloatArray) -> CrossSection:
    """Each symbol's outcome relative to the cross-section of ``returns`` (NaN = unknown, left out of the ranks)."""
    values = np.asarray(returns, dtype=np.float64)
    known = np.isfinite(values)
    mean = float(values[known].mean()) if known.any() else math.nan
    return CrossSection(
        percentile=row_percentiles(np.where(known, values, np.nan))[0] * 100.0,
        excess=np.where(known, values - mean, np.nan),
        beats=beats_median(values)[0],
    )


def top_excess(scores: ind.FloatArray, excess: ind.FloatArray, *, count: int) -> float:
    """Mean log excess return of the ``count`` best-scored symbols with a known excess (NaN with fewer)."""
    known = np.flatnonzero(np.isfinite(excess) & np.isfinite(scores))
    if known.size < count:
        return math.nan
    best = known[np.argsort(-scores[known], kind="stable")[:count]]
    return float(excess[best].mean())


@dataclass(frozen=True, slots=True)
class LevelOutcome:
    """Whether a level was touched within the window and, if so, whether price bounced off it."""

    touched: bool
    bounced: bool


def level_outcome(series: PriceSeries, entry: int, *, price: float, support: bool, window: int) -> LevelOutcome | None:
    """The touch and bounce of a level at ``price`` after row ``entry``; None when the reach cannot be judged."""
    reach = entry + window + BOUNCE_CANDLES
    if reach >= series.close.size or not series.clean(entry, reach):
        return None
    future = slice(entry + 1, entry + 1 + window)
    crossed = series.low[future] <= price if support else series.high[future] >= price
    if not crossed.any():
        return LevelOutcome(touched=False, bounced=False)
    after = series.close[entry + 1 + int(np.argmax(crossed)) + BOUNCE_CANDLES]
    return LevelOutcome(touched=True, bounced=bool(after > price) if support else bool(after < price))


@dataclass(frozen=True, slots=True)
class LabelStats:
    """The symbols of one label with a known return: how many, and their means (NaN when there are none)."""

    count: int
    mean_return: float
    mean_excess: float
    mean_percentile: float
    share_beating: float


def label_stats(
    labels: Sequence[Label],
    *,
    returns: ind.FloatArray,
    excess: ind.FloatArray,
    percentile: ind.FloatArray,
    beats: ind.FloatArray,
) -> dict[Label, LabelStats]:
    """Per label (``LABELS`` order), the count and mean outcome of its symbols with a known return (aligned arrays)."""
    names = np.array([str(label) for label in labels], dtype=object)
    known = np.isfinite(np.asarray(returns, dtype=np.float64))
    columns = [np.asarray(values, dtype=np.float64) for values in (returns, excess, percentile, beats)]
    out: dict[Label, LabelStats] = {}
    for label in LABELS:
        chosen = known & (names == str(label))
        count = int(chosen.sum())
        means = [float(values[chosen].mean()) if count else math.nan for values in columns]
        out[label] = LabelStats(count, *means)
    return out


def window_problem(series: PriceSeries, entry_open_ms: int, *, candles: int) -> str | None:
    """Why the entry candle (opened at ``entry_open_ms``) and the ``candles`` after it cannot be scored, or None."""
    entry = series.row_at(entry_open_ms)
    if entry is None:
        return f"candle gap: no entry candle (opened {_iso(entry_open_ms)})"
    last_open_ms = entry_open_ms + candles * series.step_ms
    present = int(np.searchsorted(series.open_ms, last_open_ms, side="right")) - entry
    if present < candles + 1:
        missing = candles + 1 - present
        return f"candle gap: {missing} of the {candles} candles after {_iso(entry_open_ms)} missing"
    last = entry + candles
    if not series.clean(entry, last):
        first = entry + int(np.argmax(series.breaks_before[entry : last + 1] > series.breaks_before[entry]))
        return f"price discontinuity at {_iso(int(series.open_ms[first]))} within the window"
    return None


def entry_atr(series: PriceSeries, entry: int, *, period: int = ATR_PERIOD) -> float:
    """Mean true range of the ``period`` candles ending at row ``entry``; NaN without them, contiguous and clean."""
    first = entry - period
    if first < 0 or int(series.open_ms[entry] - series.open_ms[first]) != period * series.step_ms:
        return math.nan
    if not series.clean(first, entry):
        return math.nan
    rows = slice(first, entry + 1)
    ranges = ind.true_range(series.high[rows], series.low[rows], series.close[rows])[1:]
    return float(ranges.mean())


def _iso(value_ms: int) -> str:
    return ms_to_datetime(value_ms).strftime("%Y-%m-%dT%H:%MZ")
