"""Walk-forward evaluation of exactly what is served: at each evaluation time, the worker's holding, models, analysis.

Invariants:
- The configuration is the worker's ``AnalysisOptions``; the calls are the worker's (``app.analysis.served``:
  ``refit`` and ``analyse_served``) on what it would hold (``app.evaluate.replay``).
- Evaluation times are close times of analysis candles on the union timeline of the files, from the
  ``MIN_HISTORY_CANDLES``-th on, within ``[start_ms, end_ms)``, every ``step``-th (default: about
  ``TARGET_PERIODS``). At time t a symbol is entered at the close of its candle that closed at t.
- Refits follow the worker's cadence: models are fitted at every multiple of ``refit_interval_s`` since the epoch
  (midnight UTC for a daily refit) on the candles closed by then; time t uses the newest fit at or before t.
- Causal: the analysis at t reads only candles closed by t; outcomes are read afterwards, at most
  ``reach_candles(options)`` candles after the entry. The level placebo uses the run's other evaluation times, so a
  run reads nothing after its last evaluation time plus that reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.analysis import AnalysisError
from app.analysis.options import AnalysisOptions
from app.analysis.outcomes import BOUNCE_CANDLES
from app.analysis.served import analyse_served, refit
from app.domain import AnalysisResult, HorizonModel, ms_to_datetime
from app.evaluate.level_events import LevelTally, record_levels
from app.evaluate.replay import Holding, MarketData, fit_candles, holding_at
from app.evaluate.report import build_report
from app.evaluate.scoring import ENTRY_DELAY_CANDLES, PeriodScore, period_indicators, score_period

MIN_HISTORY_CANDLES = 60
TARGET_PERIODS = 200


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """Which times to evaluate (close times, ms) and the random baseline's seed; the rest comes from the options."""

    step: int | None = None  # timeline candles between evaluation times; None -> about TARGET_PERIODS
    seed: int = 0
    start_ms: int | None = None  # evaluate times >= start_ms (older candles are still history)
    end_ms: int | None = None  # ... and < end_ms


def reach_candles(options: AnalysisOptions) -> int:
    """How many candles after an entry candle the outcomes read at most."""
    longest = max(h.candles for h in options.horizons)
    return max(longest + ENTRY_DELAY_CANDLES, longest + BOUNCE_CANDLES)


def evaluation_step(market: MarketData, config: EvaluationConfig) -> int:
    """Timeline candles between evaluation times."""
    return config.step or max(1, _window(market, config).size // TARGET_PERIODS)


def _window(market: MarketData, config: EvaluationConfig) -> NDArray[np.int64]:
    usable = market.timeline_close_ms()[MIN_HISTORY_CANDLES:]
    if config.start_ms is not None:
        usable = usable[usable >= config.start_ms]
    if config.end_ms is not None:
        usable = usable[usable < config.end_ms]
    return usable


def evaluation_times(market: MarketData, config: EvaluationConfig) -> list[int]:
    """The close times evaluated, ascending."""
    return [int(t) for t in _window(market, config)[:: evaluation_step(market, config)]]


@dataclass(frozen=True, slots=True)
class ServedPeriod:
    """One evaluation time: what the worker held, the models it served with, and the analysis it published."""

    holding: Holding
    models: dict[str, HorizonModel]
    result: AnalysisResult


def served_periods(market: MarketData, options: AnalysisOptions, times: list[int]) -> Iterator[ServedPeriod]:
    """The served analysis at each of ``times`` (a time where nothing can be analysed is skipped)."""
    interval_ms = max(1, int(options.refit_interval_s * 1000))
    fitted_ms: int | None = None
    models: dict[str, HorizonModel] = {}
    for now_ms in times:
        fit_ms = now_ms // interval_ms * interval_ms
        if fit_ms != fitted_ms:
            history = fit_candles(market, fit_ms, history_candles=options.history_candles)
            models, fitted_ms = refit(history, options, fitted_at=ms_to_datetime(fit_ms)), fit_ms
        holding = holding_at(market, now_ms, lookback=options.lookback_candles)
        if not holding.entries:
            continue
        try:
            result = analyse_served(holding.candles, tickers=holding.tickers, options=options, models=models)
        except AnalysisError:
            continue
        yield ServedPeriod(holding=holding, models=models, result=result)


def evaluate(market: MarketData, options: AnalysisOptions, config: EvaluationConfig) -> dict[str, object]:
    """The report (docs/analysis.md §5) of a walk forward through ``market`` with the served configuration."""
    rng = np.random.default_rng(config.seed)
    scores: list[PeriodScore] = []
    levels = LevelTally(window=max(h.candles for h in options.horizons))
    models: list[dict[str, HorizonModel]] = []
    for period in served_periods(market, options, evaluation_times(market, config)):
        panel = period_indicators(period.result, period.holding, timeframe=options.analysis_timeframe)
        scores.append(score_period(period.result, period.holding, panel, market=market, options=options, rng=rng))
        record_levels(levels, period.result, period.holding, panel, market=market)
        models.append(period.models)
    levels.judge_placebos(market, rng=np.random.default_rng([config.seed, 1]))
    return build_report(
        scores,
        levels,
        models,
        market=market,
        options=options,
        step=evaluation_step(market, config),
        config={"seed": config.seed, "start_ms": config.start_ms, "end_ms": config.end_ms},
    )
