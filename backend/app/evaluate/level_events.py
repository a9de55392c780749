"""Served support/resistance levels against what price did next, and against a fair placebo.

Invariants:
- Events: at each period, every listed level (group ``all``) and every tier price (groups ``aggressive``,
  ``moderate``, ``conservative``, support and resistance together) of each analysed symbol, judged by
  ``app.analysis.outcomes.level_outcome`` over ``window`` candles (the longest horizon) after the entry candle.
- Each event's distance from the entry close is measured in the symbol's ATR14 of the analysis timeframe at t
  (as the analysis computes it). Its placebo: the same symbol, the same side, the same distance in ATR units, placed
  at another evaluation time of the same run (drawn uniformly with the placebo generator) and judged the same way.
  A level is better than chance when its bounce rate beats the placebo's.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from app.analysis.outcomes import LevelOutcome, level_outcome
from app.analysis.symbol_indicators import IndicatorPanel
from app.domain import AnalysisResult, SupportLevels
from app.evaluate.replay import Holding, MarketData

TIERS = ("aggressive", "moderate", "conservative")
GROUPS = ("all", *TIERS)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A symbol at one period: its entry row, entry close and ATR."""

    entry: int
    close: float
    atr: float


@dataclass(frozen=True, slots=True)
class LevelEvent:
    """One judged level: its group, symbol, period index, side and distance from the close in ATRs."""

    group: str
    symbol: str
    period: int
    support: bool
    distance_atr: float
    outcome: LevelOutcome


@dataclass(slots=True)
class LevelTally:
    """Every judged level event of a run, the anchors of every period, and (after ``judge_placebos``) placebos."""

    window: int
    events: list[LevelEvent] = field(default_factory=list)
    anchors: list[dict[str, Anchor]] = field(default_factory=list)
    placebos: list[LevelOutcome | None] = field(default_factory=list)

    def judge_placebos(self, market: MarketData, *, rng: np.random.Generator) -> None:
        """One placebo per event (None when the symbol has no other period or the placebo cannot be judged)."""
        periods: dict[str, list[int]] = defaultdict(list)
        for index, anchors in enumerate(self.anchors):
            for symbol in anchors:
                periods[symbol].append(index)
        self.placebos = [self._placebo(event, periods[event.symbol], market, rng) for event in self.events]

    def _placebo(
        self, event: LevelEvent, periods: list[int], market: MarketData, rng: np.random.Generator
    ) -> LevelOutcome | None:
        if len(periods) < 2:
            return None
        drawn = int(rng.integers(len(periods) - 1))  # uniform over the symbol's periods other than the event's
        drawn += drawn >= bisect_left(periods, event.period)
        anchor = self.anchors[periods[drawn]][event.symbol]
        price = anchor.close + event.distance_atr * anchor.atr
        if not price > 0:
            return None
        prices = market.symbols[event.symbol].prices
        return level_outcome(prices, anchor.entry, price=price, support=event.support, window=self.window)


def _prices(levels: SupportLevels) -> list[tuple[str, float, bool]]:
    """(group, price, is support) of every listed level and every tier price."""
    out = [("all", level.price, level.kind == "support") for level in levels.levels]
    for tier in TIERS:
        for side in ("support", "resistance"):
            price = getattr(levels, f"{tier}_{side}")
            if price is not None:
                out.append((tier, float(price), side == "support"))
    return out


def record_levels(
    tally: LevelTally, result: AnalysisResult, holding: Holding, panel: IndicatorPanel, *, market: MarketData
) -> None:
    """Judge every served level of the period and remember the period's anchors for the placebos."""
    period = len(tally.anchors)
    anchors = {
        m.symbol: Anchor(holding.entries[m.symbol], m.close, m.atr)
        for m in panel.metrics
        if math.isfinite(m.atr) and m.atr > 0
    }
    tally.anchors.append(anchors)
    for symbol, anchor in anchors.items():
        levels = result.levels.get(symbol)
        prices = market.symbols[symbol].prices
        for group, price, support in _prices(levels) if levels else []:
            outcome = level_outcome(prices, anchor.entry, price=price, support=support, window=tally.window)
            if outcome is not None:
                distance = (price - anchor.close) / anchor.atr
                tally.events.append(LevelEvent(group, symbol, period, support, distance, outcome))
