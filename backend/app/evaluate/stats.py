"""Statistics of a score against forward returns: Spearman rank IC, its t-statistic, quintile spread.

Invariants: pure functions of their arrays; NaN pairs are dropped; a period with fewer than ``MIN_SYMBOLS`` valid
pairs or a constant input gives NaN and is left out of the summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from numpy.typing import NDArray

MIN_SYMBOLS = 5
FloatArray = NDArray[np.float64]


def _valid(scores: FloatArray, returns: FloatArray) -> tuple[FloatArray, FloatArray]:
    keep = np.isfinite(scores) & np.isfinite(returns)
    return scores[keep], returns[keep]


def spearman_ic(scores: FloatArray, returns: FloatArray) -> float:
    """Spearman rank correlation (average ranks for ties) of scores and forward returns."""
    x, y = _valid(scores, returns)
    if x.size < MIN_SYMBOLS:
        return math.nan
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def quintile_spread(scores: FloatArray, returns: FloatArray) -> float:
    """Mean forward return of the top fifth by score minus the bottom fifth (n // 5 symbols each)."""
    x, y = _valid(scores, returns)
    size = x.size // 5
    if x.size < MIN_SYMBOLS or size == 0:
        return math.nan
    order = np.argsort(x, kind="stable")
    return float(y[order[-size:]].mean() - y[order[:size]].mean())


def summarise(ics: Sequence[float], spreads: Sequence[float]) -> dict[str, float | None]:
    """mean_ic, t_stat (mean / (std / sqrt n)), share_positive, quintile_spread over the periods; None if no period."""
    ic = np.array([v for v in ics if math.isfinite(v)])
    spread = np.array([v for v in spreads if math.isfinite(v)])
    if ic.size == 0:
        return {"mean_ic": None, "t_stat": None, "share_positive": None, "quintile_spread": None}
    std = float(ic.std(ddof=1)) if ic.size > 1 else 0.0
    t_stat = float(ic.mean() / (std / math.sqrt(ic.size))) if std > 0 else None
    return {
        "mean_ic": round(float(ic.mean()), 5),
        "t_stat": None if t_stat is None else round(t_stat, 3),
        "share_positive": round(float(np.mean(ic > 0)), 4),
        "quintile_spread": round(float(spread.mean()), 6) if spread.size else None,
    }
