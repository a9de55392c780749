"""The analysis options of this deployment, built from ``Settings`` once and validated (``AnalysisOptions``).

``DANTARO_FACTOR_WEIGHTS`` pins weights by hand instead of fitting them: a flat object (``{"rsi": 1}``) pins every
served horizon, an object of objects (``{"1h": {"reversal_1": 1}}``) pins the horizons it names. An unknown horizon or
factor, or an invalid weight, raises ``ValueError`` naming the setting and what is valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.analysis import FitSettings, LiquidityGate
from app.analysis.factors import check_weights
from app.analysis.options import AnalysisOptions
from app.config import Settings
from app.domain import Horizon, timeframe_ms

DAY_MS = 86_400_000


def _numbers(weights: Mapping[str, Any], *, source: str) -> dict[str, float]:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in weights.values()):
        raise ValueError(f"{source}: every weight must be a number")
    return check_weights({name: float(value) for name, value in weights.items()}, source=source)


def pinned_weights(settings: Settings) -> dict[str, dict[str, float]]:
    """Horizon name -> configured weights (normalised), from ``DANTARO_FACTOR_WEIGHTS``; empty = fit them all."""
    configured: dict[str, Any] = dict(settings.factor_weights)
    horizons = [h.name for h in settings.served_horizons]
    if not configured:
        return {}
    if all(isinstance(value, dict) for value in configured.values()):
        unknown = sorted(set(configured) - set(horizons))
        if unknown:
            raise ValueError(f"DANTARO_FACTOR_WEIGHTS: unknown horizons {unknown}; served are {horizons}")
        return {h: _numbers(w, source=f"DANTARO_FACTOR_WEIGHTS[{h}]") for h, w in configured.items()}
    flat = _numbers(configured, source="DANTARO_FACTOR_WEIGHTS")
    return dict.fromkeys(horizons, flat)


def fit_settings(settings: Settings) -> FitSettings:
    """The fit window and the minimum history, in candles of the analysis timeframe."""
    per_day = max(1, DAY_MS // timeframe_ms(settings.analysis_timeframe))
    return FitSettings(
        window_candles=max(1, int(settings.fit_window_days * per_day)),
        min_cross_sections=max(1, int(settings.fit_min_days * per_day)),
    )


def liquidity_gate(settings: Settings) -> LiquidityGate:
    """The liquidity gate from ``DANTARO_LIQUIDITY_*``."""
    return LiquidityGate(
        min_quote_volume_24h=settings.liquidity_min_quote_volume,
        min_share_of_median=settings.liquidity_min_share_of_median,
    )


def analysis_options(settings: Settings) -> AnalysisOptions:
    """Everything ``analyse`` and the refit need from the settings, validated."""
    horizons: tuple[Horizon, ...] = settings.served_horizons
    return AnalysisOptions(
        analysis_timeframe=settings.analysis_timeframe,
        levels_timeframe=settings.levels_timeframe,
        lookback_candles=settings.lookback_candles,
        horizons=horizons,
        default_horizon=settings.served_default_horizon,
        fit=fit_settings(settings),
        refit_interval_s=settings.refit_interval_s,
        pinned_weights=pinned_weights(settings),
        liquidity=liquidity_gate(settings),
    )
