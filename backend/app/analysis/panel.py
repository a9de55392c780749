"""The history a model is fitted on: every factor's rank-normalised score at every candle, on one timeline.

Invariants:
- Causal: built only from the candles given; a row (an open time) holds what was known when that candle closed,
  computed by exactly the functions that give the served last row (``indicator_matrices`` and ``FACTORS``).
- Each column is one series computed on its own candles (a missing candle is skipped, as in serving), then placed on
  the union timeline of open times; a symbol without a candle at a time is NaN there. ``columns`` may hold several
  segments of one symbol (split at a price discontinuity by ``app.analysis.hazards.history_columns``, which every
  caller should build its columns with): each is its own column, so no indicator, factor or forward return ever
  spans the break.
- Forward returns are log returns from a row's close to the close ``candles`` rows later on the timeline (the same
  time distance for every symbol); NaN when either candle is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.analysis import indicators as ind
from app.analysis.factors import FACTOR_NAMES, rank_normalise, raw_factors
from app.analysis.symbol_indicators import CandleArrays, indicator_matrices, stack_right_aligned


@dataclass(frozen=True, slots=True)
class FactorHistory:
    """Factor scores (factor x time x column) and log closes (time x column) of a universe on one timeline."""

    open_time_ms: NDArray[np.int64]
    scores: ind.FloatArray
    log_close: ind.FloatArray
    columns: tuple[str, ...]

    @property
    def rows(self) -> int:
        """How many open times the timeline has."""
        return int(self.open_time_ms.size)

    def forward_returns(self, candles: int) -> ind.FloatArray:
        """Log return from each row's close to the close ``candles`` rows later (NaN where either is missing)."""
        out = np.full(self.log_close.shape, np.nan)
        if 0 < candles < self.rows:
            out[:-candles] = self.log_close[candles:] - self.log_close[:-candles]
        return out


PRICE_COLUMNS = ("high", "low", "close", "volume")
CHUNK_COLUMNS = 100  # columns whose indicators are computed at once: bounds the temporaries, not the result


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where each column's newest candles go on the timeline."""

    rows: int
    lengths: list[int]
    positions: list[NDArray[np.intp]]

    def place(self, matrix: ind.FloatArray, into: ind.FloatArray, columns: range) -> None:
        """Right-aligned per-column values of ``matrix`` (one column per entry of ``columns``) moved to their rows."""
        for offset, column in enumerate(columns):
            length = self.lengths[column]
            into[self.positions[column], column] = matrix[matrix.shape[0] - length :, offset]


def _placement(columns: Mapping[str, CandleArrays], timeline: NDArray[np.int64]) -> _Placement:
    positions, lengths = [], []
    for arrays in columns.values():
        recent = arrays.open_time_ms >= timeline[0]
        positions.append(np.searchsorted(timeline, arrays.open_time_ms[recent]))
        lengths.append(int(recent.sum()))
    return _Placement(int(timeline.size), lengths, positions)


def factor_history(
    columns: Mapping[str, CandleArrays], *, timeframe: str, keep_rows: int | None = None
) -> FactorHistory:
    """Factor scores and log closes of ``columns`` (label -> checked candles) on the union timeline of open times.

    Pass ``app.analysis.hazards.history_columns(series)``: one column per segment between price discontinuities,
    so no indicator, factor value or forward return spans a break. ``keep_rows`` keeps only the newest rows of the
    timeline (the indicators still see the whole history). Indicators are computed ``CHUNK_COLUMNS`` columns at a
    time (each column is independent, so the result does not depend on the chunking).
    """
    arrays = list(columns.values())
    timeline = np.unique(np.concatenate([a.open_time_ms for a in arrays]))
    if keep_rows is not None:
        timeline = timeline[-keep_rows:]
    placement = _placement(columns, timeline)
    scores = np.full((len(FACTOR_NAMES), placement.rows, len(arrays)), np.nan)
    close_on_timeline = np.full((placement.rows, len(arrays)), np.nan)
    for start in range(0, len(arrays), CHUNK_COLUMNS):
        chunk = range(start, min(start + CHUNK_COLUMNS, len(arrays)))
        high, low, close, volume = (
            stack_right_aligned([getattr(arrays[c], name) for c in chunk])
            for name in ("high", "low", "close", "volume")
        )
        raw = raw_factors(indicator_matrices(high, low, close, volume, timeframe=timeframe))
        for k, name in enumerate(FACTOR_NAMES):
            placement.place(raw[name], scores[k], chunk)
        placement.place(close, close_on_timeline, chunk)
    for k in range(len(FACTOR_NAMES)):
        scores[k] = rank_normalise(scores[k])
    return FactorHistory(
        open_time_ms=timeline.astype(np.int64),
        scores=scores,
        log_close=np.log(close_on_timeline),
        columns=tuple(columns),
    )
