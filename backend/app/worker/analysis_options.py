"""The analysis options the worker passes to ``analyse``, built from ``Settings`` once and validated.

Configured factor weights override the defaults for the analysis timeframe one factor at a time; an unknown
factor or an invalid weight raises ``ValueError`` naming the setting and the valid factors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app.analysis import FactorWeights, LiquidityGate
from app.analysis.factors import default_weights
from app.config import Settings
from app.domain import timeframe_ms


def factor_weights(settings: Settings) -> FactorWeights:
    """The timeframe's default weights with ``DANTARO_FACTOR_WEIGHTS`` applied."""
    base = default_weights(timeframe_ms(settings.analysis_timeframe))
    overrides: dict[str, Any] = dict(settings.factor_weights)
    known = {f.name for f in dataclasses.fields(FactorWeights)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"DANTARO_FACTOR_WEIGHTS: unknown factors {unknown}; use {sorted(known)}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in overrides.values()):
        raise ValueError("DANTARO_FACTOR_WEIGHTS: every weight must be a number")
    try:
        return dataclasses.replace(base, **{name: float(value) for name, value in overrides.items()})
    except ValueError as exc:
        raise ValueError(f"DANTARO_FACTOR_WEIGHTS: {exc}") from None


def liquidity_gate(settings: Settings) -> LiquidityGate:
    """The liquidity gate from ``DANTARO_LIQUIDITY_*``."""
    return LiquidityGate(
        min_quote_volume_24h=settings.liquidity_min_quote_volume,
        min_share_of_median=settings.liquidity_min_share_of_median,
    )
