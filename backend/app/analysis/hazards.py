"""Data hazards of real candle series: price discontinuities, stale series, and the parts that are safe to analyse.

Rules (docs/analysis.md, "Data hazards"):
- A *price discontinuity* at candle ``i`` (``i >= 1``) of one series when
  ``|ln(open_i / close_{i-1})| > ln 3`` (the candle opened more than a factor 3 away from where the previous one
  closed: a 24/7 market opens where it closed, so this is a redenomination, a token swap or a relisting; the break
  lies *between* candles ``i-1`` and ``i`` and candle ``i`` starts the new segment), or
  ``|ln(close_i / close_{i-1})| > ln 10`` (the close moved by more than a factor 10 in one candle: the jump happened
  *within* candle ``i``, which then belongs to neither side). ``factor`` is the price ratio across the break
  (``open_i / close_{i-1}`` between candles, ``close_i / close_{i-1}`` within one).
- Causal: the decision at candle ``i`` reads candles ``i-1`` and ``i`` only, so appending candles never changes an
  earlier decision, and the segments of a prefix are prefixes of the segments of the whole series.
- Serving (``screen``): a symbol is analysed on the candles after its last break (nothing before it feeds an
  indicator, a factor or a level); it is left out when fewer than the minimum candles remain. A symbol whose last
  candle closed more than ``STALE_CANDLES`` (2) candles before the newest close of the universe is *stale* and left
  out of the cross-section. Every such symbol gets a one-line reason in ``errors`` (analysed on a part, or left
  out), next to the reasons ``check_series`` gives (too few candles, not ascending, bad prices).
- A ticker's 24h change spans a break that is less than 24 hours old: such a symbol's change comes from its candles.
- Fit and evaluation history (``history_columns``): one column per segment, labelled by the symbol for the first
  one and ``SYMBOL#2``, ``SYMBOL#3``, ... for later ones (labels never change when candles are appended), so no
  indicator, factor value or forward return spans a break.
- Pure: no I/O, no clock, no logging; the worker logs each ``errors`` entry as an ``analysis_hazard`` event.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from app.analysis.symbol_indicators import DAY_MS, CandleArrays, check_series
from app.domain import Ticker, ms_to_datetime, timeframe_ms

GAP_FACTOR = 3.0  # open vs the previous close
MOVE_FACTOR = 10.0  # close vs the previous close
STALE_CANDLES = 2
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Discontinuity:
    """A price break at candle ``index`` of a series (opened at ``open_time_ms``): prices moved by ``factor``."""

    index: int
    open_time_ms: int
    factor: float
    within_candle: bool  # the jump happened inside candle ``index``: it belongs to neither side

    @property
    def resume_index(self) -> int:
        """The first candle of the segment after the break."""
        return self.index + 1 if self.within_candle else self.index

    def describe(self) -> str:
        """Where and how large the break was: ``at 2022-08-01T10:00Z (x0.001 between candles)``."""
        where = "within the candle" if self.within_candle else "between candles"
        at = ms_to_datetime(self.open_time_ms).strftime("%Y-%m-%dT%H:%MZ")
        return f"at {at} ({factor_text(self.factor)} {where})"


def factor_text(factor: float) -> str:
    """``x1000``, ``x0.001``, ``x12.3``: a price factor in three significant digits (whole numbers from 100)."""
    return f"x{factor:.0f}" if factor >= 100 else f"x{factor:.3g}"


def discontinuities(arrays: CandleArrays) -> list[Discontinuity]:
    """Every price discontinuity of one checked series (positive prices), oldest first."""
    if len(arrays) < 2:
        return []
    gap = np.log(arrays.open[1:] / arrays.close[:-1])
    move = np.log(arrays.close[1:] / arrays.close[:-1])
    between = np.abs(gap) > math.log(GAP_FACTOR)
    within = ~between & (np.abs(move) > math.log(MOVE_FACTOR))
    return [
        Discontinuity(
            index=int(k) + 1,
            open_time_ms=int(arrays.open_time_ms[k + 1]),
            factor=math.exp(float(gap[k] if between[k] else move[k])),
            within_candle=bool(within[k]),
        )
        for k in np.flatnonzero(between | within)
    ]


def split_at_discontinuities(arrays: CandleArrays) -> list[CandleArrays]:
    """The non-empty segments of one checked series between its discontinuities, oldest first."""
    starts, ends = [0], []
    for found in discontinuities(arrays):
        ends.append(found.index)
        starts.append(found.resume_index)
    ends.append(len(arrays))
    return [arrays[start:end] for start, end in zip(starts, ends, strict=True) if end > start]


def history_columns(series: Mapping[str, CandleArrays]) -> dict[str, CandleArrays]:
    """Columns for ``factor_history``: each checked series split at its discontinuities (``SYMBOL``, ``SYMBOL#2``)."""
    columns: dict[str, CandleArrays] = {}
    for symbol, arrays in series.items():
        for number, segment in enumerate(split_at_discontinuities(arrays), start=1):
            columns[symbol if number == 1 else f"{symbol}#{number}"] = segment
    return columns


def column_symbol(label: str) -> str:
    """The symbol a ``history_columns`` label belongs to (``ADA/USDT#2`` -> ``ADA/USDT``)."""
    return label.split("#", 1)[0]


def after_last_break(arrays: CandleArrays, *, min_candles: int) -> tuple[CandleArrays | None, str | None]:
    """The candles after the last discontinuity (all without one) and what was cut; None and why when too few."""
    found = discontinuities(arrays)
    if not found:
        return arrays, None
    last = found[-1]
    segment = arrays[last.resume_index :]
    what = "price discontinuity" if len(found) == 1 else f"{len(found)} price discontinuities, the last"
    if len(segment) < min_candles:
        return None, f"{what} {last.describe()}; left out: {len(segment)} candles after it < {min_candles} needed"
    return segment, f"{what} {last.describe()}; analysed on the {len(segment)} candles after it"


def duration_text(duration_ms: int) -> str:
    """``5 h``, ``3 d``, ``45 min``: a whole number of the largest unit that divides the duration."""
    for unit_ms, unit in ((DAY_MS, "d"), (HOUR_MS, "h")):
        if duration_ms % unit_ms == 0:
            return f"{duration_ms // unit_ms} {unit}"
    return f"{duration_ms / MINUTE_MS:g} min"


def stale_reason(arrays: CandleArrays, *, newest_open_ms: int, candle_ms: int) -> str | None:
    """Why a series is stale (its last candle more than ``STALE_CANDLES`` candles behind the newest), or None."""
    behind_ms = newest_open_ms - int(arrays.open_time_ms[-1])
    if behind_ms <= STALE_CANDLES * candle_ms:
        return None
    return f"stale: last candle closed {duration_text(behind_ms)} before the others"


@dataclass(frozen=True, slots=True)
class Screened:
    """The series to analyse (cut after their last break), why others were cut or left out, and which were cut."""

    series: dict[str, CandleArrays]
    errors: dict[str, str]
    cut: frozenset[str]


def screen(arrays: Mapping[str, CandleArrays], *, timeframe: str, min_candles: int) -> Screened:
    """Check every series, cut each after its last discontinuity and leave out the short and the stale ones."""
    errors: dict[str, str] = {}
    checked: dict[str, CandleArrays] = {}
    for symbol, candles in arrays.items():
        problem = check_series(candles, min_candles=min_candles)
        if problem is None:
            checked[symbol] = candles
        else:
            errors[symbol] = f"{timeframe} candles: {problem}"
    newest_open_ms = max((int(c.open_time_ms[-1]) for c in checked.values()), default=0)
    series: dict[str, CandleArrays] = {}
    for symbol, candles in checked.items():
        stale = stale_reason(candles, newest_open_ms=newest_open_ms, candle_ms=timeframe_ms(timeframe))
        segment, cut = (None, stale) if stale else after_last_break(candles, min_candles=min_candles)
        if cut is not None:
            errors[symbol] = f"{timeframe} candles: {cut}"
        if segment is not None:
            series[symbol] = segment
    cut_symbols = frozenset(s for s, c in series.items() if len(c) < len(checked[s]))
    return Screened(series=series, errors=errors, cut=cut_symbols)


def tickers_after_breaks(tickers: Mapping[str, Ticker], screened: Screened, *, timeframe: str) -> dict[str, Ticker]:
    """``tickers`` without the 24h change of a symbol cut less than 24 hours ago (that change spans the break)."""
    out = dict(tickers)
    for symbol in screened.cut & set(tickers):
        candles = screened.series[symbol]
        covered_ms = int(candles.open_time_ms[-1] - candles.open_time_ms[0]) + timeframe_ms(timeframe)
        if covered_ms < DAY_MS:
            out[symbol] = dataclasses.replace(tickers[symbol], change_24h_pct=None)
    return out
