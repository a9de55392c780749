"""Typed models of the API's JSON bodies: one class per OpenAPI component schema, same name, same fields.

Invariants: every field, its type and whether it is required match the component of the same name in the API's
``/openapi.json`` (checked against ``create_app`` by ``clients/python/tests/test_openapi_drift.py``). Models
are immutable; a field the API adds later is ignored rather than refused, so an older client keeps working.
Units as the API documents them: scores in [0, 1], ``*_pct`` and ``price_change_24h`` in percent, volumes in the
quote currency, ``age_seconds`` in seconds since the run was generated. The track-record bodies are in
``track_models``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL"]
TickersSource = Literal["exchange", "candles"]


class ApiModel(BaseModel):
    """Base of every model: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ErrorDetail(ApiModel):
    """A machine-readable code and a human-readable message."""

    code: str
    message: str


class ErrorResponse(ApiModel):
    """The body of every 4xx and 5xx answer (``application/json``, or ``application/problem+json`` for the pairlist)."""

    success: Literal[False] = False
    error: ErrorDetail


class HealthResponse(ApiModel):
    """Liveness of the API process."""

    status: Literal["ok"]
    version: str
    uptime_s: float


class _Freshness(ApiModel):
    """Which run a payload comes from and how old it is (the fields every data payload carries)."""

    success: Literal[True] = True
    cache_timestamp: datetime
    generated_at: datetime
    data_source: str
    exchange: str
    run_id: str
    as_of: datetime = Field(description="close time of the last candle the run used")
    age_seconds: float
    stale: bool
    tickers_source: TickersSource


class HorizonScoreItem(ApiModel):
    """A symbol's score, rank and label at one horizon."""

    score: float
    rank: int
    label: Label
    probability_outperform: float | None


class CalibrationKnot(ApiModel):
    """One knot of a horizon's score-to-probability calibration."""

    percentile: float
    probability: float


class HorizonModelBody(ApiModel):
    """How one horizon's scores and labels were made."""

    horizon: str
    candles: int
    weights: dict[str, float]
    weights_source: Literal["fitted", "configured", "prior"]
    fitted_at: datetime | None
    fit_start: datetime | None
    fit_end: datetime | None
    cross_sections: int
    walk_forward_ic: float | None
    walk_forward_t: float | None
    calibration: list[CalibrationKnot]
    calibration_samples: int
    labels_active: bool
    note: str


class RecommendationItem(ApiModel):
    """One ranked symbol of a run."""

    symbol: str
    rank: int
    total_score: float
    technical_score: float
    volume_score: float
    volatility_score: float
    risk_score: float
    recommendation_strength: Label
    current_price: float
    price_change_24h: float
    volume_24h: float
    market_cap: None = None
    analysis_details: dict[str, Any]
    horizon: str
    probability_outperform: float | None
    calibration_samples: int
    scores_by_horizon: dict[str, HorizonScoreItem]
    updated_at: datetime


class RecommendationsResponse(_Freshness):
    """``GET /api/v1/recommendations``: the best-ranked symbols of the current run at one horizon."""

    recommendations: list[RecommendationItem]
    total_analyzed: int
    horizon: str
    horizons: list[str]
    model: HorizonModelBody | None


class LevelItem(ApiModel):
    """One support or resistance level."""

    price: float
    kind: Literal["support", "resistance"]
    strength: float
    sources: list[str]
    touches: int
    last_touched_at: datetime | None
    distance_pct: float


class PivotPointsBody(ApiModel):
    """Classic floor pivots of the last closed UTC day before the run's ``as_of``: P = (H + L + C) / 3,
    R1 = 2P - L, S1 = 2P - H, R2 = P + (H - L), S2 = P - (H - L)."""

    period_start: datetime = Field(description="00:00 UTC of the day H, L and C come from")
    high: float
    low: float
    close: float
    pivot: float
    r1: float
    r2: float
    s1: float
    s2: float


class VolumeProfileBody(ApiModel):
    """The volume profile of the symbol's levels series: point of control and the value-area bounds (prices)."""

    poc: float
    value_area_high: float
    value_area_low: float
    value_area_share: float = Field(description="the share of the volume the value area holds at least (0.7)")


class SupportLevelsBody(ApiModel):
    """Support and resistance of one symbol, with the last day's pivots and the volume profile they partly come
    from (null for runs published before those were served)."""

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
    pivots: PivotPointsBody | None
    volume_profile: VolumeProfileBody | None


class SupportLevelsResponse(_Freshness):
    """``GET /api/v1/support-levels/{symbol}``."""

    symbol: str
    support_levels: SupportLevelsBody


class Mover(ApiModel):
    """A top gainer or loser."""

    symbol: str
    price_change_24h: float


class MarketStatusBody(ApiModel):
    """The market as the run saw it."""

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


class SystemHealth(ApiModel):
    """What the API measured about the data it serves."""

    status: Literal["healthy", "degraded", "stale"]
    cache_status: Literal["none", "ok", "down"]
    data_age_seconds: float
    stale_after_seconds: float
    stale: bool
    data_source: str
    run_id: str
    symbols_analysed: int
    symbols_failed: int


class MarketStatusResponse(_Freshness):
    """``GET /api/v1/market-status``."""

    status: Literal["ok"]
    total_symbols: int
    system_health: SystemHealth
    market_status: MarketStatusBody


class SymbolItem(ApiModel):
    """One symbol of the current run."""

    symbol: str
    rank: int
    current_price: float
    price_change_24h: float
    total_score: float
    recommendation_strength: Label
    probability_outperform: float | None
    has_levels: bool


class SymbolsResponse(_Freshness):
    """``GET /api/v1/symbols``."""

    symbols: list[SymbolItem]
    count: int
    total_analyzed: int
    horizon: str
    horizons: list[str]


class ExchangeFreshness(ApiModel):
    """One configured exchange and the run it serves (null fields while ``not_ready``)."""

    exchange: str
    status: Literal["ready", "not_ready"]
    run_id: str | None
    as_of: datetime | None
    generated_at: datetime | None
    age_seconds: float | None
    stale: bool | None
    data_source: str | None


class ExchangesResponse(ApiModel):
    """``GET /api/v1/exchanges``."""

    success: Literal[True] = True
    default_exchange: str
    exchanges: list[ExchangeFreshness]


class BundleRequest(ApiModel):
    """The body of ``POST /api/v1/bundle``: which parts of the current run to return (the API checks the values)."""

    include_recommendations: bool = True
    recommendations_count: int = 50
    include_support_levels: bool = False
    symbols: list[str] = Field(default_factory=list)
    include_market_status: bool = True
    horizon: str | None = None


class BundleResponse(_Freshness):
    """``POST /api/v1/bundle``: the parts asked for, all from one run; parts not asked for are None."""

    recommendations: list[RecommendationItem] | None = None
    total_analyzed: int
    horizon: str | None = None
    horizons: list[str] | None = None
    model: HorizonModelBody | None = None
    support_levels: dict[str, SupportLevelsBody] | None = None
    unknown_symbols: list[str] | None = None
    market_status: MarketStatusBody | None = None
    system_health: SystemHealth | None = None


class CandleItem(ApiModel):
    """One closed candle (``volume`` in the base currency)."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandlesResponse(_Freshness):
    """``GET /api/v1/candles/{symbol}``: closed candles up to the run's ``as_of``, oldest first."""

    symbol: str
    timeframe: str
    limit: int
    count: int
    candles: list[CandleItem]


class PairlistResponse(_Freshness):
    """``GET /api/v1/pairlist``: ccxt pairs, best first, in the shape freqtrade's RemotePairList reads."""

    pairs: list[str]
    refresh_period: int
    horizon: str
    quote: str | None
    total_analyzed: int


class StreamReady(ApiModel):
    """The data of the stream's first event, ``ready``."""

    exchanges: list[str]
    heartbeat_s: float
    replayed: int
    missed: bool


class StreamRun(ApiModel):
    """The data of a ``run`` event: one newly published run."""

    run_id: str
    exchange: str
    as_of: datetime
    published_at: datetime
