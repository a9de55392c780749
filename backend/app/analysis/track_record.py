"""The track record of one published run at one served horizon: its calls against the candles that followed.

Definitions (docs/analysis.md, "Track record"; every outcome is ``app.analysis.outcomes``, as ``dantaro evaluate``):
- The run's symbols are its recommendations, in symbol order. A symbol's entry candle is the one closing at the
  run's ``data_as_of``; its window is the entry candle and the ``h + BOUNCE_CANDLES`` candles after it (the exit
  candle closes ``h`` candles after ``data_as_of``; the bounce of a level touched on the last candle of the horizon
  needs ``BOUNCE_CANDLES`` more). A window with a missing candle or a price discontinuity excludes the symbol, with
  the reason in ``RunScore.excluded``; an excluded symbol keeps its ``SymbolOutcome`` row with None outcomes.
- Per horizon: the Spearman IC of the served score (``scores_by_horizon[h].score``) with the forward log returns;
  per served label at h, ``label_stats``; the top-5 and top-10 mean log excess return.
- Levels: every listed level (``SupportLevels.levels``) of each scored symbol with an ATR (``entry_atr``), judged by
  ``level_outcome`` over ``h`` candles.
- Random baseline, from ``numpy.random.default_rng(seed)`` with ``seed`` the SHA-256 of the run id (UTF-8) read as
  a big-endian integer, drawn in this order: one uniform score per symbol (``rng.random(n)``, symbol order); one
  permutation of the symbols (``rng.permutation(n)``: symbol i gets the served label of symbol ``perm[i]``); then,
  for every level of a symbol with an ATR in order (symbols in order, levels as served) when two or more symbols
  have an ATR, one
  other such symbol (``k = rng.integers(m - 1)``, ``k += k >= own index``): the level's distance from its symbol's
  entry close in its ATRs, applied to the other symbol's entry close and ATR, on the same side, judged the same way
  (not judged when that price is not positive). Same run id, same draws, at every horizon.
Pure: candles and the published snapshot in, domain rows out; no I/O, no clock (``scored_at`` is given).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from app.analysis import indicators as ind
from app.analysis.outcomes import (
    ATR_PERIOD,
    BOUNCE_CANDLES,
    TOP_COUNTS,
    CrossSection,
    LevelOutcome,
    PriceSeries,
    cross_section,
    entry_atr,
    forward_return,
    information_coefficients,
    label_stats,
    level_outcome,
    price_series,
    top_excess,
    window_problem,
)
from app.domain import Candle, Horizon, Label, LabelOutcome, Recommendation, RunScore, Snapshot, SymbolOutcome

ATR_HISTORY_CANDLES = ATR_PERIOD + 1  # candles before the entry that ``entry_atr`` reads (with the previous close)
_MILLISECOND = timedelta(milliseconds=1)


def window_candles(horizon: Horizon) -> int:
    """How many candles after the entry candle scoring ``horizon`` reads (the exit candle, then the bounce)."""
    return horizon.candles + BOUNCE_CANDLES


def random_generator(run_id: str) -> np.random.Generator:
    """The random baseline's generator of one run: seeded with the SHA-256 of its id."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(run_id.encode()).digest(), "big"))


@dataclass(frozen=True, slots=True)
class RunWindow:
    """What scoring one run at one horizon reads: the published run and, per symbol, its candles of the run's
    timeframe from ``ATR_HISTORY_CANDLES`` before the entry candle to the end of the window (ascending)."""

    snapshot: Snapshot
    horizon: Horizon
    step_ms: int
    candles: Mapping[str, Sequence[Candle]]


@dataclass(frozen=True, slots=True)
class _Symbol:
    """One scored symbol's series, entry row, entry close and ATR (NaN without one)."""

    series: PriceSeries
    entry: int
    atr: float

    @property
    def close(self) -> float:
        return float(self.series.close[self.entry])


@dataclass(frozen=True, slots=True)
class _Figures:
    """IC, labels, top-N and level counts of one signal (the served one or the random baseline)."""

    ic: float | None
    labels: tuple[LabelOutcome, ...]
    top: Mapping[int, float | None]
    levels: tuple[int, int, int]  # judged, touched, bounced


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _prepare(window: RunWindow, symbols: Sequence[str]) -> tuple[dict[str, _Symbol], dict[str, str]]:
    """The symbols whose window is complete and clean, and why each other one is excluded."""
    entry_open_ms = int(window.snapshot.data_as_of.timestamp() * 1000) - window.step_ms
    scored: dict[str, _Symbol] = {}
    excluded: dict[str, str] = {}
    for symbol in symbols:
        series = price_series(window.candles.get(symbol, ()), step_ms=window.step_ms)
        problem = window_problem(series, entry_open_ms, candles=window_candles(window.horizon))
        entry = series.row_at(entry_open_ms)
        if problem is None and entry is not None:  # no problem: the entry candle is there
            scored[symbol] = _Symbol(series, entry, entry_atr(series, entry))
        else:
            excluded[symbol] = problem or "candle gap: no entry candle"
    return scored, excluded


def _levels(window: RunWindow, symbol: str) -> list[tuple[float, bool]]:
    levels = window.snapshot.levels.get(symbol)
    return [] if levels is None else [(level.price, level.kind == "support") for level in levels.levels]


def _judge(symbol: _Symbol, price: float, support: bool, candles: int) -> LevelOutcome | None:
    return level_outcome(symbol.series, symbol.entry, price=price, support=support, window=candles)


def _tally(outcomes: Sequence[LevelOutcome | None]) -> tuple[int, int, int]:
    judged = [o for o in outcomes if o is not None]
    return len(judged), sum(o.touched for o in judged), sum(o.bounced for o in judged)


def _level_outcomes(
    window: RunWindow, scored: Mapping[str, _Symbol], rng: np.random.Generator
) -> tuple[list[LevelOutcome | None], list[LevelOutcome | None]]:
    """Every level of the symbols with an ATR, judged as served and as placed by the random baseline."""
    anchored = [s for s in sorted(scored) if math.isfinite(scored[s].atr) and scored[s].atr > 0]
    real: list[LevelOutcome | None] = []
    placebo: list[LevelOutcome | None] = []
    for index, symbol in enumerate(anchored):
        own = scored[symbol]
        for price, support in _levels(window, symbol):
            real.append(_judge(own, price, support, window.horizon.candles))
            if len(anchored) < 2:
                continue
            drawn = int(rng.integers(len(anchored) - 1))
            other = scored[anchored[drawn + (drawn >= index)]]
            placed = other.close + (price - own.close) / own.atr * other.atr
            placebo.append(_judge(other, placed, support, window.horizon.candles) if placed > 0 else None)
    return real, placebo


def _figures(
    scores: ind.FloatArray,
    labels: Sequence[Label],
    returns: ind.FloatArray,
    outcome: CrossSection,
    levels: Sequence[LevelOutcome | None],
) -> _Figures:
    stats = label_stats(
        labels, returns=returns, excess=outcome.excess, percentile=outcome.percentile, beats=outcome.beats
    )
    return _Figures(
        ic=_finite(float(information_coefficients(scores, returns)[0])),
        labels=tuple(
            LabelOutcome(
                label=label,
                count=s.count,
                mean_return=_finite(s.mean_return),
                mean_excess_log_return=_finite(s.mean_excess),
                mean_percentile=_finite(s.mean_percentile),
                share_beating_median=_finite(s.share_beating),
            )
            for label, s in stats.items()
        ),
        top={n: _finite(top_excess(scores, outcome.excess, count=n)) for n in TOP_COUNTS},
        levels=_tally(levels),
    )


def score_run(window: RunWindow, *, scored_at: datetime) -> tuple[RunScore, list[SymbolOutcome]]:
    """The run's score at the window's horizon and every analysed symbol's outcome (see the module docstring)."""
    name = window.horizon.name
    recs = sorted(window.snapshot.recommendations, key=lambda r: r.symbol)
    symbols = [r.symbol for r in recs]
    scored, excluded = _prepare(window, symbols)
    returns = np.array(
        [
            forward_return(scored[s].series, scored[s].entry, candles=window.horizon.candles)
            if s in scored
            else math.nan
            for s in symbols
        ],
        dtype=np.float64,
    )
    outcome = cross_section(returns)
    scores = np.array([r.scores_by_horizon[name].score for r in recs], dtype=np.float64)
    labels = [r.scores_by_horizon[name].label for r in recs]
    rng = random_generator(window.snapshot.run_id)
    random_scores = rng.random(len(recs))
    permutation = rng.permutation(len(recs))
    real_levels, random_levels = _level_outcomes(window, scored, rng)
    served = _figures(scores, labels, returns, outcome, real_levels)
    placebo = _figures(random_scores, [labels[i] for i in permutation], returns, outcome, random_levels)
    score = _run_score(
        window,
        scored_at=scored_at,
        symbols=int(np.isfinite(returns).sum()),
        excluded=excluded,
        served=served,
        placebo=placebo,
    )
    return score, _symbol_outcomes(window, recs, returns, outcome)


def _run_score(
    window: RunWindow,
    *,
    scored_at: datetime,
    symbols: int,
    excluded: Mapping[str, str],
    served: _Figures,
    placebo: _Figures,
) -> RunScore:
    snapshot = window.snapshot
    return RunScore(
        run_id=snapshot.run_id,
        exchange=snapshot.exchange,
        horizon=window.horizon.name,
        candles=window.horizon.candles,
        as_of=snapshot.data_as_of,
        window_end=snapshot.data_as_of + (window.horizon.candles * window.step_ms) * _MILLISECOND,
        scored_at=scored_at,
        symbols=symbols,
        excluded=dict(sorted(excluded.items())),
        ic=served.ic,
        labels=served.labels,
        top5_excess=served.top[5],
        top10_excess=served.top[10],
        levels_judged=served.levels[0],
        levels_touched=served.levels[1],
        levels_bounced=served.levels[2],
        random_ic=placebo.ic,
        random_labels=placebo.labels,
        random_top5_excess=placebo.top[5],
        random_top10_excess=placebo.top[10],
        random_levels_judged=placebo.levels[0],
        random_levels_touched=placebo.levels[1],
        random_levels_bounced=placebo.levels[2],
    )


def _symbol_outcomes(
    window: RunWindow, recs: Sequence[Recommendation], returns: ind.FloatArray, outcome: CrossSection
) -> list[SymbolOutcome]:
    snapshot, name = window.snapshot, window.horizon.name
    return [
        SymbolOutcome(
            run_id=snapshot.run_id,
            exchange=snapshot.exchange,
            horizon=name,
            symbol=rec.symbol,
            as_of=snapshot.data_as_of,
            label=rec.scores_by_horizon[name].label,
            score=rec.scores_by_horizon[name].score,
            rank=rec.scores_by_horizon[name].rank,
            probability_outperform=rec.scores_by_horizon[name].probability_outperform,
            forward_return=_finite(float(returns[i])),
            excess_log_return=_finite(float(outcome.excess[i])),
            percentile=_finite(float(outcome.percentile[i])),
        )
        for i, rec in enumerate(recs)
    ]
