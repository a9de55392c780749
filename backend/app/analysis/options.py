"""What one deployment's analysis is: timeframes, lookback, served horizons, how models are fitted, the BUY gate.

The worker builds it from the settings (``app.worker.analysis_options``) and ``dantaro evaluate`` is handed the same
object, so the evaluation runs exactly the configuration that is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.analysis.model_fit import FitSettings
from app.analysis.recommend import LiquidityGate
from app.domain import Horizon, timeframe_ms


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """The served analysis configuration (all times in candles of ``analysis_timeframe`` unless named otherwise)."""

    analysis_timeframe: str
    levels_timeframe: str
    lookback_candles: int
    horizons: tuple[Horizon, ...]
    default_horizon: str
    fit: FitSettings
    refit_interval_s: float
    pinned_weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # horizon -> weights
    liquidity: LiquidityGate = field(default_factory=LiquidityGate)

    @property
    def candle_ms(self) -> int:
        """Length of one analysis candle."""
        return timeframe_ms(self.analysis_timeframe)

    @property
    def history_candles(self) -> int:
        """Analysis candles a refit reads: the fit window, the longest horizon and the indicators' warm-up."""
        return self.fit.window_candles + max(h.candles for h in self.horizons) + FIT_WARMUP_CANDLES


FIT_WARMUP_CANDLES = 200  # history before the first fitted cross-section (the slowest indicators' warm-up)
