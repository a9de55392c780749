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
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.api.horizons import HORIZON_MAX_CHARS, HORIZON_PATTERN
from app.api.legacy_shapes import (
    RUN_FIELDS,
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
from app.domain import HorizonModel, HorizonScore, Level, MarketStatus, Recommendation, Snapshot, SupportLevels


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


class _Freshness(_Strict):
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


def _run_fields() -> dict[str, Any]:
    """The ``legacy_shapes.RUN_FIELDS`` keys: their types from ``Snapshot``'s hints, their descriptions."""
    hints = get_type_hints(Snapshot)
    return {name: (_response_type(hints[name]), Field(description=doc)) for name, doc in RUN_FIELDS.items()}


if TYPE_CHECKING:
    Freshness = _Freshness
else:  # the freshness keys plus the run's own fields
    Freshness = create_model("Freshness", __base__=_Freshness, __doc__=_Freshness.__doc__, **_run_fields())


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


SYMBOL_MAX_CHARS = 64  # a symbol as a client writes it (path parameter or bundle item)
BUNDLE_MAX_SYMBOLS = 100
SymbolText = Annotated[str, Field(max_length=SYMBOL_MAX_CHARS)]


class BundleRequest(_Strict):
    """Which parts of the current run to return in one call."""

    include_recommendations: bool = True
    recommendations_count: int = Field(default=50, ge=1, le=100)
    include_support_levels: bool = False
    symbols: list[SymbolText] = Field(
        default_factory=list,
        max_length=BUNDLE_MAX_SYMBOLS,
        description=f"symbols for support_levels (at most {BUNDLE_MAX_SYMBOLS}, each at most {SYMBOL_MAX_CHARS} "
        "characters)",
    )
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
