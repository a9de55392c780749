"""Scoring one served period: the signals at t (served scores, baselines, single factors) against what followed.

Invariants:
- Signals are read from the served analysis and its inputs only (candles closed by t): per horizon the served
  ``scores_by_horizon`` score and label; baselines ``random`` (uniform, one draw per symbol per period from the
  evaluation's seeded generator), ``change_24h`` (the served 24h change, from the ticker), ``reversal_24h`` (its
  negative), ``volume_rank`` (the served 24h quote volume); every factor of ``FACTORS`` with its a-priori sign, as
  the analysis computes it at t (``compute_indicators`` -> ``factor_scores``: raw values ranked in the
  cross-section, so a symbol without any volume ranks lowest on liquidity).
- Outcomes come from ``app.analysis.outcomes`` (forward returns, IC, percentiles, excess, top-N), entered at the
  close at t and, for the sensitivity check, ``ENTRY_DELAY_CANDLES`` later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.analysis import indicators as ind
from app.analysis.factors import FACTOR_NAMES, factor_scores
from app.analysis.options import AnalysisOptions
from app.analysis.outcomes import TOP_COUNTS, cross_section, forward_return, information_coefficients, top_excess
from app.analysis.symbol_indicators import IndicatorPanel, candle_arrays, compute_indicators
from app.domain import AnalysisResult, Horizon, Label, Recommendation
from app.evaluate.replay import Holding, MarketData

ENTRY_DELAY_CANDLES = 1
DELAYS = (0, ENTRY_DELAY_CANDLES)
BASELINES = ("random", "change_24h", "reversal_24h", "volume_rank")


@dataclass(frozen=True, slots=True)
class HorizonOutcome:
    """One period at one horizon and entry delay: each signal's IC, each scored symbol's label and outcome."""

    ics: Mapping[str, float]  # "score", baseline names, "factor:<name>"
    labels: Sequence[Label]  # of the symbols with a known forward return
    returns: ind.FloatArray  # same symbols: forward log return
    percentile: ind.FloatArray  # same symbols: forward-return percentile 0..100
    excess: ind.FloatArray  # log excess return over the cross-section's mean
    beats: ind.FloatArray  # 1 above the median, 0 not
    top_excess: Mapping[int, float]  # N -> mean excess of the N best-scored


@dataclass(frozen=True, slots=True)
class PeriodScore:
    """Everything scored at one evaluation time, keyed by (horizon name, entry delay in candles)."""

    now_ms: int
    symbols: int
    outcomes: Mapping[tuple[str, int], HorizonOutcome]


def period_indicators(result: AnalysisResult, holding: Holding, *, timeframe: str) -> IndicatorPanel:
    """The analysis's indicator panel at t for the analysed symbols (sorted), exactly as ``analyse`` computes it."""
    symbols = sorted(r.symbol for r in result.recommendations)
    series = {s: candle_arrays(holding.candles[s][timeframe]) for s in symbols}
    return compute_indicators(series, timeframe=timeframe, tickers=holding.tickers)


def _signals(
    recs: Sequence[Recommendation], panel: IndicatorPanel, rng: np.random.Generator
) -> dict[str, ind.FloatArray]:
    change = np.array([r.price_change_24h for r in recs], dtype=np.float64)
    factors = factor_scores(panel.last_rows)
    return {
        "random": rng.random(len(recs)),
        "change_24h": change,
        "reversal_24h": -change,
        "volume_rank": np.array([r.volume_24h for r in recs], dtype=np.float64),
        **{f"factor:{name}": factors[name] for name in FACTOR_NAMES},
    }


def _horizon_outcome(
    recs: Sequence[Recommendation], signals: Mapping[str, ind.FloatArray], returns: ind.FloatArray, horizon: Horizon
) -> HorizonOutcome:
    score = np.array([r.scores_by_horizon[horizon.name].score for r in recs], dtype=np.float64)
    named = {"score": score, **signals}
    ics = information_coefficients(np.stack(list(named.values())), returns)
    outcome = cross_section(returns)
    known = np.isfinite(returns)
    return HorizonOutcome(
        ics=dict(zip(named, (float(v) for v in ics), strict=True)),
        labels=[r.scores_by_horizon[horizon.name].label for r, k in zip(recs, known, strict=True) if k],
        returns=returns[known],
        percentile=outcome.percentile[known],
        excess=outcome.excess[known],
        beats=outcome.beats[known],
        top_excess={n: top_excess(score, outcome.excess, count=n) for n in TOP_COUNTS},
    )


def score_period(
    result: AnalysisResult,
    holding: Holding,
    panel: IndicatorPanel,
    *,
    market: MarketData,
    options: AnalysisOptions,
    rng: np.random.Generator,
) -> PeriodScore:
    """Every horizon's and entry delay's outcome of the period served at ``holding.now_ms``."""
    recs = sorted(result.recommendations, key=lambda r: r.symbol)
    signals = _signals(recs, panel, rng)
    outcomes = {}
    for horizon in options.horizons:
        for delay in DELAYS:
            returns = np.array(
                [
                    forward_return(
                        market.symbols[r.symbol].prices, holding.entries[r.symbol], candles=horizon.candles, delay=delay
                    )
                    for r in recs
                ]
            )
            outcomes[(horizon.name, delay)] = _horizon_outcome(recs, signals, returns, horizon)
    return PeriodScore(now_ms=holding.now_ms, symbols=len(recs), outcomes=outcomes)
