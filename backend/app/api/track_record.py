"""Plain-dict views of the track record: the summary over a window of scored runs, one row per scored run, and one
symbol's past calls. Plain Python (the API imports no numpy): every figure is a sum, a mean or a ratio of the
stored per-run scores.

Definitions (docs/api.md "Track record"):
- The window: scored runs whose ``as_of`` lies in (``since``, ``until``], ``until`` = ``as_of`` of the exchange's
  current run, ``since`` = ``until`` - ``days`` days. ``as_of`` of the summary = the newest ``window_end`` among
  them (the close of the last horizon candle the figures used; level bounces read up to 3 candles more; null when
  nothing is scored).
- IC: mean of the runs' defined ICs; its t statistic is Newey-West (``app.estimators``) with
  ``overlap_lags(horizon, run spacing)`` lags, the run spacing being the median positive gap between consecutive
  runs' ``as_of`` (0 lags with fewer than two distinct times); ``positive_ic_share`` = share of defined ICs > 0.
- Per label: ``count`` summed over runs; each mean is count-weighted over the runs where it is defined
  (``sum(count x mean) / sum(count)``), so it equals the mean over every call of that label in the window.
- Top-N excess: the mean over runs where it is defined. Levels: ``touch_rate`` = touched / judged,
  ``bounce_rate`` = bounced / touched (``dantaro evaluate``'s rates), summed over runs.
- The random baseline gets the same figures from the runs' ``random_*`` fields (scored on the same runs).
Units: returns are log returns; percentiles 0..100 (50 = no skill); shares and rates in [0, 1]; times UTC.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain import Label, LabelOutcome, RunScore, SymbolOutcome
from app.estimators import finite, newey_west_t, overlap_lags

View = dict[str, object]


@dataclass(frozen=True, slots=True)
class Window:
    """Scored runs with ``since`` < as_of <= ``until``."""

    days: int
    since: datetime
    until: datetime

    @classmethod
    def ending(cls, until: datetime, *, days: int) -> Window:
        """The ``days`` days up to ``until``."""
        return cls(days=days, since=until - timedelta(days=days), until=until)

    def holds(self, as_of: datetime) -> bool:
        """Whether a run entered at ``as_of`` is in the window."""
        return self.since < as_of <= self.until

    def view(self) -> View:
        """``days``, ``since`` and ``until``."""
        return {"days": self.days, "since": self.since, "until": self.until}


@dataclass(frozen=True, slots=True)
class Side:
    """The figures of one run for the served scores or for the random baseline."""

    ic: float | None
    labels: tuple[LabelOutcome, ...]
    top5_excess: float | None
    top10_excess: float | None
    levels_judged: int
    levels_touched: int
    levels_bounced: int


def served_side(score: RunScore) -> Side:
    """The figures of the served scores, labels and levels."""
    return Side(
        score.ic,
        score.labels,
        score.top5_excess,
        score.top10_excess,
        score.levels_judged,
        score.levels_touched,
        score.levels_bounced,
    )


def random_side(score: RunScore) -> Side:
    """The figures of the random baseline scored on the same run."""
    return Side(
        score.random_ic,
        score.random_labels,
        score.random_top5_excess,
        score.random_top10_excess,
        score.random_levels_judged,
        score.random_levels_touched,
        score.random_levels_bounced,
    )


def _mean(values: Iterable[float | None]) -> float | None:
    kept = finite(value for value in values if value is not None)
    return math.fsum(kept) / len(kept) if kept else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _weighted(outcomes: Sequence[LabelOutcome], value: Callable[[LabelOutcome], float | None]) -> float | None:
    """``sum(count x value) / sum(count)`` over the outcomes whose value is defined."""
    pairs = [(o.count, v) for o in outcomes if o.count > 0 and (v := value(o)) is not None and math.isfinite(v)]
    weight = sum(count for count, _ in pairs)
    return math.fsum(count * v for count, v in pairs) / weight if weight else None


def label_view(label: Label, outcomes: Sequence[LabelOutcome]) -> View:
    """One label's outcomes aggregated over runs (``outcomes``: that label's per-run outcomes)."""
    return {
        "label": label.value,
        "count": sum(o.count for o in outcomes),
        "mean_return": _weighted(outcomes, lambda o: o.mean_return),
        "mean_excess_log_return": _weighted(outcomes, lambda o: o.mean_excess_log_return),
        "mean_percentile": _weighted(outcomes, lambda o: o.mean_percentile),
        "share_beating_median": _weighted(outcomes, lambda o: o.share_beating_median),
    }


def levels_view(judged: int, touched: int, bounced: int) -> View:
    """Level counts and the rates derived from them."""
    return {
        "judged": judged,
        "touched": touched,
        "bounced": bounced,
        "touch_rate": _ratio(touched, judged),
        "bounce_rate": _ratio(bounced, touched),
    }


def figures_view(sides: Sequence[Side], *, lags: int) -> View:
    """IC, per-label outcomes, top-N excess and level rates aggregated over runs (oldest first)."""
    ics = finite(side.ic for side in sides if side.ic is not None)
    by_label = {label: [o for side in sides for o in side.labels if o.label is label] for label in Label}
    return {
        "runs_with_ic": len(ics),
        "mean_ic": _mean(ics),
        "ic_t": newey_west_t(ics, lags=lags),
        "positive_ic_share": _ratio(sum(ic > 0 for ic in ics), len(ics)),
        "labels": [label_view(label, outcomes) for label, outcomes in by_label.items()],
        "top5_excess": _mean(side.top5_excess for side in sides),
        "top10_excess": _mean(side.top10_excess for side in sides),
        "levels": levels_view(
            sum(side.levels_judged for side in sides),
            sum(side.levels_touched for side in sides),
            sum(side.levels_bounced for side in sides),
        ),
    }


def run_spacing_s(scores: Sequence[RunScore]) -> float | None:
    """Median positive gap between consecutive runs' ``as_of`` (oldest first), None without two distinct times."""
    times = sorted({score.as_of for score in scores})
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    return statistics.median(gaps) if gaps else None


def ic_lags(scores: Sequence[RunScore]) -> int:
    """Newey-West lags for the runs' IC series: the overlap of the horizon windows at the runs' spacing."""
    spacing_s = run_spacing_s(scores)
    if spacing_s is None:
        return 0
    horizon_s = statistics.median((score.window_end - score.as_of).total_seconds() for score in scores)
    return overlap_lags(horizon_s=horizon_s, spacing_s=spacing_s)


def _run_ref(score: RunScore | None) -> View | None:
    return None if score is None else {"run_id": score.run_id, "as_of": score.as_of}


def summary_view(scores: Sequence[RunScore], *, window: Window) -> View:
    """The track record over ``window`` from the scored runs (any order; runs outside the window are ignored)."""
    ordered = sorted((score for score in scores if window.holds(score.as_of)), key=lambda s: (s.as_of, s.run_id))
    lags = ic_lags(ordered)
    return {
        **window.view(),
        "as_of": max((score.window_end for score in ordered), default=None),
        "runs_scored": len(ordered),
        "first_run": _run_ref(ordered[0] if ordered else None),
        "last_run": _run_ref(ordered[-1] if ordered else None),
        "symbols_scored": sum(score.symbols for score in ordered),
        "symbols_excluded": sum(len(score.excluded) for score in ordered),
        "run_spacing_seconds": run_spacing_s(ordered),
        "ic_t_lags": lags,
        "model": figures_view([served_side(score) for score in ordered], lags=lags),
        "random_baseline": figures_view([random_side(score) for score in ordered], lags=lags),
    }


def run_row_view(score: RunScore) -> View:
    """One scored run: its IC (and the baseline's), per-label counts and mean percentiles, top-N and levels."""
    return {
        "run_id": score.run_id,
        "as_of": score.as_of,
        "window_end": score.window_end,
        "scored_at": score.scored_at,
        "symbols": score.symbols,
        "excluded": dict(score.excluded),
        "ic": score.ic,
        "random_ic": score.random_ic,
        "labels": [
            {"label": o.label.value, "count": o.count, "mean_percentile": o.mean_percentile} for o in score.labels
        ],
        "top5_excess": score.top5_excess,
        "top10_excess": score.top10_excess,
        "levels": levels_view(score.levels_judged, score.levels_touched, score.levels_bounced),
    }


def call_view(outcome: SymbolOutcome) -> View:
    """One past call of a symbol and what followed."""
    return {
        "run_id": outcome.run_id,
        "as_of": outcome.as_of,
        "label": outcome.label.value,
        "score": outcome.score,
        "rank": outcome.rank,
        "probability_outperform": outcome.probability_outperform,
        "forward_return": outcome.forward_return,
        "excess_log_return": outcome.excess_log_return,
        "percentile": outcome.percentile,
    }


def calls_view(outcomes: Sequence[SymbolOutcome], *, window: Window) -> View:
    """A symbol's calls in ``window``, newest first."""
    kept = sorted(
        (outcome for outcome in outcomes if window.holds(outcome.as_of)),
        key=lambda outcome: (outcome.as_of, outcome.run_id),
        reverse=True,
    )
    return {**window.view(), "count": len(kept), "calls": [call_view(outcome) for outcome in kept]}
