"""Response models: they document the payloads in the OpenAPI spec and let tests check the served JSON.

Handlers do not validate through these on the hot path (they return ``OrjsonResponse`` built by ``renderers``);
``backend/tests/api/`` validates real responses against them so the two cannot drift apart.
The models of the domain objects (``RecommendationItem``, ``LevelItem``, ``SupportLevelsBody``, ``MarketStatusBody``
with its ``Mover``, ``SymbolItem``, ``HorizonScoreItem``, ``HorizonModelBody`` with its ``CalibrationKnot``) are
derived at import from the domain dataclasses' fields and type hints and ``legacy_shapes.SHAPES`` (the legacy names,
key order, legacy-only keys and field descriptions the renderers and the OpenAPI document use), so a new domain
field needs no edit here. Every model is strict (``extra="forbid"``); every domain key is required.
Units: scores in [0, 1], ``price_change_24h`` and ``distance_pct`` in percent, volumes in the quote currency,
``age_seconds`` in seconds since the run was generated.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, cast, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.api.horizons import HORIZON_MAX_CHARS, HORIZON_PATTERN
from app.api.legacy_shapes import (
    SHAPES,
    SYMBOL_ITEM,
    Extra,
    Key,
    PairObjects,
    Projection,
    Shape,
    legacy_keys,
    projection_keys,
)
from app.domain import HorizonModel, HorizonScore, Label, Level, MarketStatus, Recommendation, SupportLevels


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _response_type(hint: Any) -> Any:
    """The response model's type for a domain type: enums as a Literal of their values, tuples as lists, mappings
    as dicts, dataclasses as their derived model."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return cast(Any, Literal)[tuple(member.value for member in hint)]
    if isinstance(hint, type) and hint in SHAPES:
        return item_model(hint)
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or origin is UnionType:
        return cast(Any, Union)[tuple(_response_type(arg) for arg in args)]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return list[_response_type(args[0])]  # type: ignore[misc]
    if origin is dict or origin is Mapping:
        return dict[_response_type(args[0]), _response_type(args[1])]  # type: ignore[misc]
    return hint


def _field(key: Key, hints: Mapping[str, Any], shape: Shape) -> tuple[Any, Any]:
    """(type, field info) of one key of a derived model; every domain key is required."""
    annotation, default = _annotation(key, hints, shape)
    return annotation, Field(default, description=shape.docs.get(key.name))


def _annotation(key: Key, hints: Mapping[str, Any], shape: Shape) -> tuple[Any, Any]:
    """(type, default) of one key of a derived model."""
    if key.field is None:
        extra = key.extra or Extra()
        return (extra.annotation, None) if extra.source == "null" else (extra.annotation, ...)
    pair = shape.pairs.get(key.field)
    if pair is not None:
        return list[_pair_model(pair, get_args(get_args(hints[key.field])[0]))], ...  # type: ignore[misc]
    return shape.narrow.get(key.field, _response_type(hints[key.field])), ...


@cache
def item_model(cls: type) -> type[BaseModel]:
    """The strict response model of a domain dataclass, from its fields and ``legacy_shapes.SHAPES``."""
    shape, hints = SHAPES[cls], get_type_hints(cls)
    return _model(shape.model_name, shape.doc, {key.name: _field(key, hints, shape) for key in legacy_keys(cls)})


@cache
def _pair_model(pair: PairObjects, types: tuple[Any, ...]) -> type[BaseModel]:
    """The model of one pair served as an object (``Mover``); built once, shared by every field that uses it."""
    fields = {key: (_response_type(hint), ...) for key, hint in zip(pair.keys, types, strict=True)}
    return _model(pair.model_name, pair.doc, fields)


def projection_model(projection: Projection) -> type[BaseModel]:
    """The strict response model of a ``Projection``: its fields' derived types, then its computed keys."""
    shape, hints = SHAPES[projection.source], get_type_hints(projection.source)
    fields = {key.name: _field(key, hints, shape) for key in projection_keys(projection)}
    fields.update((name, (annotation, ...)) for name, annotation in projection.computed)
    return _model(projection.model_name, projection.doc, fields)


def _model(name: str, doc: str, fields: Mapping[str, tuple[Any, Any]]) -> type[BaseModel]:
    definitions: dict[str, Any] = dict(fields)
    return create_model(name, __base__=_Strict, __doc__=doc, **definitions)


if TYPE_CHECKING:  # the type checker sees strict models; at runtime they are derived from the domain dataclasses
    RecommendationItem = _Strict
    LevelItem = _Strict
    SupportLevelsBody = _Strict
    MarketStatusBody = _Strict
    SymbolItem = _Strict
    HorizonScoreItem = _Strict
    HorizonModelBody = _Strict
else:
    RecommendationItem = item_model(Recommendation)
    LevelItem = item_model(Level)
    SupportLevelsBody = item_model(SupportLevels)
    MarketStatusBody = item_model(MarketStatus)
    SymbolItem = projection_model(SYMBOL_ITEM)
    HorizonScoreItem = item_model(HorizonScore)
    HorizonModelBody = item_model(HorizonModel)


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


HORIZON_DOC = "the horizon rank, total_score, recommendation_strength and the order follow"
HORIZONS_DOC = "every horizon the run serves (accepted by horizon=)"
MODEL_DOC = "how the chosen horizon's scores and labels were made; null for a run published before per-horizon models"


class RecommendationsResponse(Freshness):
    """The top recommendations of the current run at one horizon, with that horizon's model."""

    recommendations: list[RecommendationItem]
    total_analyzed: int
    horizon: str = Field(description=HORIZON_DOC)
    horizons: list[str] = Field(description=HORIZONS_DOC)
    model: HorizonModelBody | None = Field(description=MODEL_DOC)


class SupportLevelsResponse(Freshness):
    """Support and resistance for one symbol."""

    symbol: str
    support_levels: SupportLevelsBody


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


class SymbolsResponse(Freshness):
    """The symbols of the current run."""

    symbols: list[SymbolItem]
    count: int
    total_analyzed: int
    horizon: str = Field(description=HORIZON_DOC)
    horizons: list[str] = Field(description=HORIZONS_DOC)


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
    horizon: str | None = Field(
        default=None,
        max_length=HORIZON_MAX_CHARS,
        pattern=HORIZON_PATTERN,
        description="the recommendations' horizon, one the run serves; default: the run's default horizon",
    )


class BundleResponse(Freshness):
    """The requested parts of one run; parts not asked for are absent."""

    recommendations: list[RecommendationItem] | None = None
    total_analyzed: int
    horizon: str | None = Field(default=None, description=HORIZON_DOC + " (with recommendations)")
    horizons: list[str] | None = Field(default=None, description=HORIZONS_DOC + " (with recommendations)")
    model: HorizonModelBody | None = Field(default=None, description=MODEL_DOC + " (with recommendations)")
    support_levels: dict[str, SupportLevelsBody] | None = None
    unknown_symbols: list[str] | None = None
    market_status: MarketStatusBody | None = None
    system_health: SystemHealth | None = None


class TrackRecordHead(_Strict):
    """The fields every track-record body starts with."""

    success: Literal[True] = True
    exchange: str
    horizon: str = Field(description="the horizon the calls were scored at (a horizon the current run serves)")
    horizons: list[str] = Field(description=HORIZONS_DOC)
    data_source: str = Field(description="tier that served the body: memory, redis or database")


class TrackWindow(TrackRecordHead):
    """A window of runs: those entered (as_of) after ``since`` and at or before ``until``."""

    days: int = Field(description="the window's length in days")
    since: datetime = Field(description="the window's start (exclusive): until - days")
    until: datetime = Field(description="the window's end (inclusive): as_of of the exchange's current run")


class RunRef(_Strict):
    """One run: its id and entry time."""

    run_id: str
    as_of: datetime = Field(description="close time of the last candle the run used (its calls' entry)")


class LevelOutcomes(_Strict):
    """Served support/resistance levels judged over the horizon window (the definitions of dantaro evaluate)."""

    judged: int = Field(description="levels whose whole window and bounce candles exist, free of discontinuities")
    touched: int = Field(description="levels price reached within the horizon window")
    bounced: int = Field(description="touched levels whose close 3 candles after the first touch is back on their side")
    touch_rate: float | None = Field(description="touched / judged")
    bounce_rate: float | None = Field(description="bounced / touched")


class LabelOutcomeItem(_Strict):
    """The calls of one label over the window: means weighted by each run's count of the label."""

    label: Label
    count: int = Field(description="calls with this label and a realised return, summed over runs")
    mean_return: float | None = Field(description="mean forward log return over the horizon")
    mean_excess_log_return: float | None = Field(description="mean log return minus the run's universe mean")
    mean_percentile: float | None = Field(description="mean cross-sectional percentile of the return, 50 = no skill")
    share_beating_median: float | None = Field(description="share of calls whose return beat the run's median")


class TrackFigures(_Strict):
    """The figures of one set of calls (the served ones or the random baseline) over the window's runs."""

    runs_with_ic: int = Field(description="runs with a defined IC (enough symbols with returns)")
    mean_ic: float | None = Field(description="mean per-run Spearman IC of score vs forward return")
    ic_t: float | None = Field(description="Newey-West t of mean_ic with ic_t_lags lags; null below 3 runs")
    positive_ic_share: float | None = Field(description="share of runs whose IC is above 0")
    labels: list[LabelOutcomeItem] = Field(description="every label, strongest buy first")
    top5_excess: float | None = Field(description="mean over runs of the 5 best-scored symbols' mean log excess")
    top10_excess: float | None = Field(description="the same for the 10 best-scored symbols")
    levels: LevelOutcomes


class TrackRecordResponse(TrackWindow):
    """How the calls of the window turned out, against a random baseline scored on the same runs."""

    as_of: datetime | None = Field(description="the newest window_end of the runs; null: nothing scored")
    runs_scored: int
    first_run: RunRef | None = Field(description="the oldest scored run of the window")
    last_run: RunRef | None = Field(description="the newest scored run of the window")
    symbols_scored: int = Field(description="symbols scored, summed over runs")
    symbols_excluded: int = Field(description="symbols left out of a run's scoring (gap or discontinuity), summed")
    run_spacing_seconds: float | None = Field(description="median time between consecutive scored runs")
    ic_t_lags: int = Field(description="Newey-West lags: the overlap of the horizon windows at the run spacing")
    model: TrackFigures = Field(description="the served scores, labels and levels")
    random_baseline: TrackFigures = Field(description="random scores, permuted labels and displaced levels")


class RunLabelCount(_Strict):
    """One label's calls in one run."""

    label: Label
    count: int
    mean_percentile: float | None = Field(description="0..100, 50 = no skill; null without returns")


class ScoredRunItem(RunRef):
    """One scored run."""

    window_end: datetime = Field(description="close time of the horizon's last candle")
    scored_at: datetime = Field(description="when the run was scored")
    symbols: int = Field(description="symbols scored")
    excluded: dict[str, str] = Field(description="symbols left out and why")
    ic: float | None
    random_ic: float | None = Field(description="the random baseline's IC on the same run")
    labels: list[RunLabelCount]
    top5_excess: float | None
    top10_excess: float | None
    levels: LevelOutcomes


class TrackRecordRunsResponse(TrackRecordHead):
    """One page of scored runs, newest first."""

    count: int
    limit: int
    runs: list[ScoredRunItem]
    next_before: str | None = Field(description="pass as before= for the next (older) page; null on the last")


class SymbolCall(RunRef):
    """One call of a symbol and what followed over the horizon."""

    label: Label
    score: float = Field(description="the horizon's score in [0, 1]")
    rank: int
    probability_outperform: float | None
    forward_return: float | None = Field(description="log return from as_of to the horizon's end; null: excluded")
    excess_log_return: float | None = Field(description="forward_return minus the run's universe mean")
    percentile: float | None = Field(description="the return's percentile in the run, 0..100")


class SymbolTrackRecordResponse(TrackWindow):
    """One symbol's calls in the window, newest first."""

    symbol: str
    count: int
    calls: list[SymbolCall]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (401, "missing or invalid bearer key"),
        (404, "unknown exchange or symbol"),
        (422, "invalid parameter, or a horizon the run does not serve (unknown_horizon)"),
        (429, "the key's per-minute budget is used up"),
        (503, "no analysis published yet for the exchange"),
    )
}
