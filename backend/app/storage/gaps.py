"""Candle gaps: runs of missing open times on a timeframe's grid (the one gap rule of ingest, backfill and reports).

Invariants:
- Pure: ascending open times in, gaps out; no I/O. ``CandleRepository.gaps`` applies it to stored candles, the
  backfill to the span it fills, the worker cycle to newly collected candles.
- The grid is ``start_ms + k * step_ms`` within ``[start_ms, end_ms)``. An open time fills its slot; an open time
  off the grid (a step mismatch) or outside the span fills nothing. A gap is a maximal run of unfilled slots.
- Without ``start_ms`` the span starts at the first open time, without ``end_ms`` it ends with the last one:
  nothing before the first or after the last given candle is a gap then (not listed yet, or not collected yet).
- Times are milliseconds since the Unix epoch (UTC). Gaps are reported, never filled with invented candles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Gap:
    """``missing`` consecutive open times on the grid, the first at ``first_missing_ms``."""

    first_missing_ms: int
    missing: int


def find_gaps(
    open_times_ms: Sequence[int], *, step_ms: int, start_ms: int | None = None, end_ms: int | None = None
) -> list[Gap]:
    """The gaps of ascending ``open_times_ms`` on the ``step_ms`` grid of ``[start_ms, end_ms)``, ascending."""
    if step_ms <= 0:
        raise ValueError(f"step_ms must be positive, not {step_ms}")
    if not open_times_ms and (start_ms is None or end_ms is None):
        return []
    first_ms = open_times_ms[0] if start_ms is None else start_ms
    stop_ms = open_times_ms[-1] + 1 if end_ms is None else end_ms
    gaps, expected_ms = [], first_ms
    for open_ms in open_times_ms:
        if open_ms < expected_ms or open_ms >= stop_ms or (open_ms - first_ms) % step_ms:
            continue  # already filled, outside the span, or off the grid
        if open_ms > expected_ms:
            gaps.append(Gap(expected_ms, (open_ms - expected_ms) // step_ms))
        expected_ms = open_ms + step_ms
    if expected_ms < stop_ms:
        gaps.append(Gap(expected_ms, -(-(stop_ms - expected_ms) // step_ms)))  # the slots left before stop_ms
    return gaps
