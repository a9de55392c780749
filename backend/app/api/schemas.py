"""Response models: they document the payloads in the OpenAPI spec and let tests check the served JSON.

Handlers do not validate through these on the hot path (they return ``OrjsonResponse`` built by ``views``);
``backend/tests/test_api_*`` validate real responses against them so the two cannot drift apart.
Units: scores in [0, 1], ``price_change_24h`` and ``distance_pct`` in percent, volumes in the quote currency,
``age_seconds`` in seconds since the run was generated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Strict):
    """A machine-readable code and a human-readable message."""

    code: str
    message: str


class ErrorResponse(_Strict):
    """The body of every 4xx and 5xx response."""

    success: Literal[False] = False
    error: ErrorDetail


class HealthResponse(_Strict):
    """Liveness of the API process (does not touch the database)."""

    status: Literal["ok"]
    version: str
    uptime_s: float


class Freshness(_Strict):
    """Which run a payload comes from and how old it is."""

    success: Literal[True] = True
    cache_timestamp: datetime = Field(description="when the run was generated (same as generated_at)")
    generated_at: datetime
    data_source: str = Field(description="tier that served the run: memory, cache/redis or database")
    exchange: str
    run_id: str
    as_of: datetime = Field(description="close time of the last candle the run used")
    age_seconds: float = Field(description="seconds since the run was generated")
    stale: bool = Field(description="age_seconds is beyond the configured staleness bound")


class RecommendationItem(_Strict):
    """One symbol's ranked recommendation."""

    symbol: str
    rank: int
    total_score: float
    technical_score: float
    volume_score: float
    volatility_score: float
    risk_score: float
    recommendation_strength: Literal["STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL"]
    current_price: float
    price_change_24h: float | None
    volume_24h: float | None
    market_cap: None = None
    analysis_details: dict[str, Any]
    updated_at: datetime


class RecommendationsResponse(Freshness):
    """The top recommendations of the current run."""

    recommendations: list[RecommendationItem]
    total_analyzed: int


class LevelItem(_Strict):
    """One support or resistance price."""

    price: float
    kind: Literal["support", "resistance"]
    strength: float
    sources: list[str]
    touches: int
    last_touched_at: datetime | None
    distance_pct: float


class SupportLevelsBody(_Strict):
    """A symbol's support and resistance tiers plus every level found."""

    symbol: str
    aggressive_support: float | None
    moderate_support: float | None
    conservative_support: float | None
    aggressive_resistance: float | None
    moderate_resistance: float | None
    conservative_resistance: float | None
    calculation_method: str
    data_points_count: int
    updated_at: datetime
    levels: list[LevelItem]


class SupportLevelsResponse(Freshness):
    """Support and resistance for one symbol."""

    symbol: str
    support_levels: SupportLevelsBody


class Mover(_Strict):
    """A top gainer or loser over 24 hours."""

    symbol: str
    price_change_24h: float


class MarketStatusBody(_Strict):
    """The exchange's market as a whole."""

    market_trend: str
    market_sentiment: str
    overall_score: float
    active_coins_count: int
    total_market_cap: None = None
    total_volume_24h: float
    analysis_summary: dict[str, Any]
    updated_at: datetime
    top_gainers: list[Mover]
    top_losers: list[Mover]
    average_volatility: float
    details: dict[str, Any]


class SystemHealth(_Strict):
    """What the API measured about the data it serves."""

    status: Literal["healthy", "degraded", "stale"]
    cache_status: Literal["none", "ok", "down"] = Field(description="shared cache tier (Redis) as last observed")
    data_age_seconds: float
    stale_after_seconds: float
    stale: bool
    data_source: str
    run_id: str
    symbols_analysed: int
    symbols_failed: int


class MarketStatusResponse(Freshness):
    """Market status of the current run."""

    status: Literal["ok"]
    total_symbols: int
    system_health: SystemHealth
    market_status: MarketStatusBody


class SymbolItem(_Strict):
    """One analysed symbol of the current run."""

    symbol: str
    rank: int
    current_price: float
    price_change_24h: float | None
    total_score: float
    recommendation_strength: Literal["STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL"]
    has_levels: bool


class SymbolsResponse(Freshness):
    """The symbols of the current run."""

    symbols: list[SymbolItem]
    count: int
    total_analyzed: int


class ExchangeFreshness(_Strict):
    """One configured exchange and the run it serves (null fields while ``not_ready``)."""

    exchange: str
    status: Literal["ready", "not_ready"]
    run_id: str | None
    as_of: datetime | None
    generated_at: datetime | None
    age_seconds: float | None
    stale: bool | None
    data_source: str | None


class ExchangesResponse(_Strict):
    """Every configured exchange with its freshness."""

    success: Literal[True] = True
    default_exchange: str
    exchanges: list[ExchangeFreshness]


class BundleRequest(_Strict):
    """Which parts of the current run to return in one call."""

    include_recommendations: bool = True
    recommendations_count: int = Field(default=50, ge=1, le=100)
    include_support_levels: bool = False
    symbols: list[str] = Field(default_factory=list, max_length=100, description="symbols for support_levels")
    include_market_status: bool = True


class BundleResponse(Freshness):
    """The requested parts of one run; parts not asked for are absent."""

    recommendations: list[RecommendationItem] | None = None
    total_analyzed: int
    support_levels: dict[str, SupportLevelsBody] | None = None
    unknown_symbols: list[str] | None = None
    market_status: MarketStatusBody | None = None
    system_health: SystemHealth | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (401, "missing or invalid bearer key"),
        (404, "unknown exchange or symbol"),
        (422, "invalid parameter"),
        (429, "the key's per-minute budget is used up"),
        (503, "no analysis published yet for the exchange"),
    )
}
