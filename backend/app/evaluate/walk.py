"""Walk-forward evaluation: at every ``step``-th candle, run ``analyse`` on the history so far, then score it.

Invariants:
- Causal: at evaluation time t (an open time in the union of the files' timelines) each symbol gets its last
  ``lookback`` candles with open time <= t, exactly what the worker would hold; forward returns and level outcomes
  are read from later candles only after ``analyse`` returned.
- A symbol takes part at t when it has a candle at t and at least ``MIN_HISTORY`` candles; a horizon h (candles)
  uses symbols with a candle h rows later.
- Baselines: ``random`` = uniform scores from ``numpy.random.default_rng(seed)`` (seed 0 by default, one draw per
  symbol per period); ``change_24h`` = the recommendation's 24h price change; ``volume_rank`` = its 24h quote volume.
- Levels: a level is *reached* when within ``max(horizons)`` candles after t the low (support) / high (resistance)
  crosses it; it *bounced* when the close ``BOUNCE_CANDLES`` candles after the first touch is back on the level's
  original side. Random levels: each real level's kind and distance %, applied to a randomly drawn other symbol at the
  same t, judged the same way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.analysis import analyse
from app.domain import AnalysisResult, Candle
from app.evaluate.candle_files import check_timeframe
from app.evaluate.stats import quintile_spread, spearman_ic, summarise

MIN_HISTORY = 60
BOUNCE_CANDLES = 3
METHODS = ("score", "random", "change_24h", "volume_rank")
TARGET_PERIODS = 150


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """What to evaluate: horizons in candles, the stride between periods, the lookback and the time window."""

    timeframe: str
    horizons: tuple[int, ...] = (1, 3, 7)
    step: int | None = None  # candles between periods; None -> about TARGET_PERIODS periods
    lookback: int = 300
    seed: int = 0
    start_ms: int | None = None  # evaluate periods with open time >= start_ms (history before it still used)
    end_ms: int | None = None  # ... and < end_ms


@dataclass(slots=True)
class _Series:
    candles: list[Candle]
    times: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


@dataclass(slots=True)
class _Tally:
    ics: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    spreads: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    bounces: list[bool] = field(default_factory=list)
    random_bounces: list[bool] = field(default_factory=list)
    periods: int = 0


def _series(candles: list[Candle]) -> _Series:
    rows = np.array([(c.open_time_ms, c.high, c.low, c.close) for c in candles], dtype=np.float64)
    return _Series(candles, rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3])


def evaluation_times(universe: Mapping[str, _Series], config: EvaluationConfig) -> list[int]:
    """Open times of the periods to evaluate, every ``step``-th of the union timeline within the window."""
    timeline = np.unique(np.concatenate([s.times for s in universe.values()]))
    usable = timeline[MIN_HISTORY : timeline.size - max(config.horizons)]
    if config.start_ms is not None:
        usable = usable[usable >= config.start_ms]
    if config.end_ms is not None:
        usable = usable[usable < config.end_ms]
    step = config.step or max(1, usable.size // TARGET_PERIODS)
    return [int(t) for t in usable[::step]]


def _forward_return(s: _Series, row: int, horizon: int) -> float:
    return float(s.close[row + horizon] / s.close[row] - 1.0) if row + horizon < s.close.size else math.nan


def _bounced(s: _Series, row: int, *, price: float, support: bool, window: int) -> bool | None:
    """None if the level is not reached within ``window`` candles after ``row``; else whether price reversed there."""
    future = slice(row + 1, min(row + 1 + window, s.close.size))
    crossed = s.low[future] <= price if support else s.high[future] >= price
    if not crossed.any():
        return None
    after = row + 1 + int(np.argmax(crossed)) + BOUNCE_CANDLES
    if after >= s.close.size:
        return None
    return bool(s.close[after] > price) if support else bool(s.close[after] < price)


def _score_period(
    result: AnalysisResult,
    *,
    rows: Mapping[str, int],
    universe: Mapping[str, _Series],
    config: EvaluationConfig,
    tally: _Tally,
    rng: np.random.Generator,
) -> None:
    recs = sorted(result.recommendations, key=lambda r: r.symbol)
    scores = {
        "score": np.array([r.total_score for r in recs]),
        "random": rng.random(len(recs)),
        "change_24h": np.array([r.price_change_24h for r in recs]),
        "volume_rank": np.array([r.volume_24h for r in recs]),
    }
    for horizon in config.horizons:
        forward = np.array([_forward_return(universe[r.symbol], rows[r.symbol], horizon) for r in recs])
        for method in METHODS:
            tally.ics[(horizon, method)].append(spearman_ic(scores[method], forward))
            tally.spreads[(horizon, method)].append(quintile_spread(scores[method], forward))
    _score_levels(result, rows=rows, universe=universe, config=config, tally=tally, rng=rng)


def _score_levels(
    result: AnalysisResult,
    *,
    rows: Mapping[str, int],
    universe: Mapping[str, _Series],
    config: EvaluationConfig,
    tally: _Tally,
    rng: np.random.Generator,
) -> None:
    symbols = sorted(rows)
    window = max(config.horizons)
    for symbol, levels in sorted(result.levels.items()):
        for level in levels.levels:
            support = level.kind == "support"
            outcome = _bounced(universe[symbol], rows[symbol], price=level.price, support=support, window=window)
            if outcome is None:
                continue
            tally.bounces.append(outcome)
            other = symbols[int(rng.integers(len(symbols)))]
            s, row = universe[other], rows[other]
            price = float(s.close[row]) * (1.0 + level.distance_pct / 100.0)
            random_outcome = _bounced(s, row, price=price, support=support, window=window)
            if random_outcome is not None:
                tally.random_bounces.append(random_outcome)


def _universe_at(
    universe: Mapping[str, _Series], t: int, lookback: int
) -> tuple[dict[str, list[Candle]], dict[str, int]]:
    """Candles each symbol had at open time ``t`` (last ``lookback``) and the row of ``t`` in its series."""
    candles: dict[str, list[Candle]] = {}
    rows: dict[str, int] = {}
    for symbol, s in universe.items():
        n = int(np.searchsorted(s.times, t, side="right"))
        if n >= MIN_HISTORY and s.times[n - 1] == t:
            candles[symbol] = s.candles[max(0, n - lookback) : n]
            rows[symbol] = n - 1
    return candles, rows


def evaluate(data: Mapping[str, Sequence[Candle]], config: EvaluationConfig) -> dict[str, Any]:
    """The report ``{"horizons": {h: {method: stats}}, "levels": {...}}`` of a walk forward through ``data``."""
    check_timeframe(config.timeframe)
    universe = {symbol: _series(list(candles)) for symbol, candles in data.items() if len(candles) > MIN_HISTORY}
    rng = np.random.default_rng(config.seed)
    tally = _Tally()
    for t in evaluation_times(universe, config) if universe else []:
        candles, rows = _universe_at(universe, t, config.lookback)
        if len(rows) < 2:
            continue
        by_tf = {symbol: {config.timeframe: c} for symbol, c in candles.items()}
        result = analyse(
            by_tf,
            tickers={},
            analysis_timeframe=config.timeframe,
            levels_timeframe=config.timeframe,
        )
        _score_period(result, rows=rows, universe=universe, config=config, tally=tally, rng=rng)
        tally.periods += 1
    return _report(tally, config)


def _rate(outcomes: Sequence[bool]) -> float | None:
    return round(float(np.mean(outcomes)), 4) if outcomes else None


def _report(tally: _Tally, config: EvaluationConfig) -> dict[str, Any]:
    horizons = {
        str(h): {m: summarise(tally.ics[(h, m)], tally.spreads[(h, m)]) for m in METHODS} for h in config.horizons
    }
    levels = {
        "bounce_rate": _rate(tally.bounces),
        "random_bounce_rate": _rate(tally.random_bounces),
        "events": len(tally.bounces),
    }
    return {"horizons": horizons, "levels": levels}
