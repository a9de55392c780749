"""How the domain objects are served in the original Dantaro Central light API: the one table (``SHAPES``) that the
renderers (``renderers.py``) and the response models (``schemas.py``) both derive from.

Invariants:
- A domain dataclass field is served under its own name unless ``renames`` gives its legacy name, in the
  dataclass's field order, except the keys ``place`` moves just before another key (``None``: last). So a field
  added to a domain dataclass appears in the responses and in the OpenAPI document with no edit here.
- Legacy-only keys (``Extra``) have no domain field: always ``null`` (``market_cap``) or the run's ``generated_at``
  (``updated_at``). Pair fields listed in ``pairs`` are served as objects (the movers).
- ``RUN_FIELDS``: the ``Snapshot``'s own fields served in every data payload next to its freshness, under their own
  names (a field added there appears in the responses and the OpenAPI document with no other edit).
- ``legacy_keys`` is computed once per type (cached); nothing here runs per request. Imports only the domain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Literal

from app.domain import (
    HorizonModel,
    HorizonScore,
    Level,
    MarketStatus,
    PivotPoints,
    Recommendation,
    SupportLevels,
    VolumeProfileLevels,
)


@dataclass(frozen=True, slots=True)
class Extra:
    """A legacy key with no domain field: always ``null``, or the run's ``generated_at``."""

    annotation: Any = None  # its type in the response model
    source: Literal["null", "generated_at"] = "null"


@dataclass(frozen=True, slots=True)
class PairObjects:
    """A ``tuple[tuple[A, B], ...]`` field served as a list of objects ``{keys[0]: A, keys[1]: B}``."""

    model_name: str  # the OpenAPI component of one object
    doc: str
    keys: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Shape:
    """How one domain dataclass is served: the OpenAPI component, renames, legacy-only keys and key order."""

    model_name: str
    doc: str
    renames: Mapping[str, str] = field(default_factory=dict)  # domain field -> legacy key
    extras: Mapping[str, Extra] = field(default_factory=dict)  # legacy key -> its constant or run value
    place: tuple[tuple[str, str | None], ...] = ()  # (legacy key, the key it precedes or None for last), in order
    pairs: Mapping[str, PairObjects] = field(default_factory=dict)  # domain field -> served as objects
    narrow: Mapping[str, Any] = field(default_factory=dict)  # domain field -> stricter type for the response model
    docs: Mapping[str, str] = field(default_factory=dict)  # served key -> its description in the OpenAPI document


@dataclass(frozen=True, slots=True)
class Projection:
    """Some fields of a domain dataclass (by domain name) plus keys computed from the run, as one response object."""

    model_name: str
    doc: str
    source: type
    fields: tuple[str, ...]
    computed: tuple[tuple[str, Any], ...]  # (legacy key, its type in the response model), after the fields


@dataclass(frozen=True, slots=True)
class Key:
    """One served key: taken from the domain field ``field``, or the legacy-only ``extra``."""

    name: str
    field: str | None = None
    extra: Extra | None = None


UPDATED_AT = Extra(annotation=datetime, source="generated_at")
MOVER = PairObjects("Mover", "A top gainer or loser over 24 hours.", ("symbol", "price_change_24h"))
KNOT = PairObjects(
    "CalibrationKnot",
    "One knot of a horizon's calibration: a score's cross-sectional percentile (0..1) and the measured probability "
    "that such a symbol beats the universe median over the horizon (linear between knots, flat beyond the ends).",
    ("percentile", "probability"),
)

SHAPES: Mapping[type, Shape] = {
    Recommendation: Shape(
        "RecommendationItem",
        "One symbol's ranked recommendation.",
        renames={"label": "recommendation_strength", "details": "analysis_details"},
        extras={"market_cap": Extra(), "updated_at": UPDATED_AT},
        place=(("market_cap", "analysis_details"), ("updated_at", None)),
        docs={
            "rank": "1 = best, at the chosen horizon",
            "total_score": "the composite score in [0, 1] at the chosen horizon",
            "recommendation_strength": "the label at the chosen horizon: from the calibrated probability, "
            "HOLD when that horizon's model has no measured edge (see the response's model.note)",
            "technical_score": "the default horizon's composite restricted to the technical factors",
            "volume_score": "the default horizon's composite restricted to the volume factors",
            "analysis_details": "factor scores, weights, contributions and reasons of the default horizon's "
            "composite, indicator values",
            "horizon": "the horizon rank, total_score and recommendation_strength are at",
            "probability_outperform": "calibrated probability that the symbol's return over the chosen horizon "
            "beats the universe median; null when that horizon has no calibration (labels HOLD)",
            "calibration_samples": "out-of-sample (score, outcome) pairs the chosen horizon's calibration was "
            "measured on",
            "scores_by_horizon": "every served horizon's score, rank, label and probability, by horizon name",
        },
    ),
    Level: Shape(
        "LevelItem",
        "One support or resistance price.",
        narrow={"kind": Literal["support", "resistance"]},
    ),
    SupportLevels: Shape(
        "SupportLevelsBody",
        "A symbol's support and resistance tiers plus every level found.",
        extras={"updated_at": UPDATED_AT},
        place=(("updated_at", "levels"),),
        docs={
            "pivots": "the classic floor pivots of the last closed UTC day, unmerged (null when no closed candle of "
            "that day was stored, and for runs published before they were served)",
            "volume_profile": "the volume profile of the levels series (calculation_method's timeframe, "
            "data_points_count candles), unmerged: point of control and value area (null when the series has no "
            "volume or no price range, and for runs published before it was served)",
        },
    ),
    PivotPoints: Shape(
        "PivotPointsBody",
        "Classic floor pivot points from the high (H), low (L) and close (C) of the last closed UTC day before the "
        "run's as_of: P = (H + L + C) / 3, R1 = 2P - L, S1 = 2P - H, R2 = P + (H - L), S2 = P - (H - L).",
        docs={
            "period_start": "00:00 UTC of the day H, L and C come from",
            "high": "H: the day's highest high",
            "low": "L: the day's lowest low",
            "close": "C: the day's last close",
            "pivot": "P = (H + L + C) / 3",
            "r1": "R1 = 2P - L",
            "r2": "R2 = P + (H - L)",
            "s1": "S1 = 2P - H",
            "s2": "S2 = P - (H - L) (may be 0 or below after a day whose range exceeds P)",
        },
    ),
    VolumeProfileLevels: Shape(
        "VolumeProfileBody",
        "The volume profile of a symbol's levels series: each candle's volume at its typical price (H + L + C) / 3 "
        "in 40 equal bins from the lowest low to the highest high; prices are bin centres.",
        docs={
            "poc": "point of control: the bin with the most volume (the lowest on ties)",
            "value_area_high": "VAH: the highest bin of the value area, grown from the POC one bin at a time towards "
            "the neighbour with more volume until it holds value_area_share of the volume",
            "value_area_low": "VAL: the lowest bin of the value area",
            "value_area_share": "the share of the series' volume the value area holds at least (0.7)",
        },
    ),
    MarketStatus: Shape(
        "MarketStatusBody",
        "The exchange's market as a whole.",
        extras={"total_market_cap": Extra(), "updated_at": UPDATED_AT},
        place=(
            ("total_market_cap", "total_volume_24h"),
            ("analysis_summary", "top_gainers"),
            ("updated_at", "top_gainers"),
            ("average_volatility", "details"),
        ),
        pairs={"top_gainers": MOVER, "top_losers": MOVER},
    ),
    HorizonScore: Shape(
        "HorizonScoreItem",
        "One symbol at one horizon: score in [0, 1], rank (1 = best), label (a recommendation_strength value) and "
        "the calibrated probability of beating the universe median over the horizon (null without calibration).",
        docs={
            "score": "the composite score in [0, 1] at this horizon",
            "rank": "1 = best at this horizon",
            "label": "the label at this horizon (HOLD when its model has no measured edge)",
            "probability_outperform": "probability of beating the universe median over this horizon; null "
            "without calibration",
        },
    ),
    HorizonModel: Shape(
        "HorizonModelBody",
        "How the chosen horizon's scores and labels were made: the non-zero factor weights and their source "
        "(fitted, configured or prior), the fit window, the fit's walk-forward IC and t, the calibration and why "
        "labels are HOLD when labels_active is false (note).",
        pairs={"calibration": KNOT},
        narrow={"weights_source": Literal["fitted", "configured", "prior"]},
        docs={
            "horizon": "the horizon's name",
            "candles": "its length in candles of the analysis timeframe",
            "weights": "the factor weights the scores used, non-zero ones only (factor name -> weight)",
            "weights_source": "fitted (walk-forward fit on stored candles), configured (DANTARO_FACTOR_WEIGHTS) or "
            "prior (the documented prior: too little history to fit)",
            "fitted_at": "when the weights were fitted (null unless fitted)",
            "fit_start": "first cross-section the fit used (its forward return had closed)",
            "fit_end": "last cross-section the fit used",
            "cross_sections": "cross-sections in the fit window",
            "walk_forward_ic": "mean out-of-sample Spearman IC of the score inside the fit window",
            "walk_forward_t": "its Newey-West t statistic",
            "calibration": "score percentile -> probability of beating the universe median, as knots",
            "calibration_samples": "out-of-sample (score, outcome) pairs the calibration was measured on",
            "labels_active": "false when the model has no measured edge: every label is then HOLD",
            "note": "why labels are HOLD when labels_active is false (empty otherwise)",
        },
    ),
}

RUN_FIELDS: Mapping[str, str] = {  # Snapshot field -> its description in the OpenAPI document
    "tickers_source": "where the run's 24h statistics (current_price, price_change_24h, volume_24h, the movers) "
    "came from: exchange (the exchange's tickers) or candles (computed from the candles: the replay source, or "
    "the fallback when the exchange's tickers call failed; docs/exchanges.md)",
}

SYMBOL_ITEM = Projection(
    "SymbolItem",
    "One analysed symbol of the current run, at the chosen horizon.",
    Recommendation,
    ("symbol", "rank", "current_price", "price_change_24h", "total_score", "label", "probability_outperform"),
    (("has_levels", bool),),
)


@cache
def legacy_keys(cls: type) -> tuple[Key, ...]:
    """The keys ``cls`` is served with, in response order; ``KeyError`` for a type without a shape."""
    shape = SHAPES[cls]
    keys = {
        shape.renames.get(item.name, item.name): Key(shape.renames.get(item.name, item.name), field=item.name)
        for item in dataclasses.fields(cls)
    }
    keys.update((name, Key(name, extra=extra)) for name, extra in shape.extras.items())
    placed = {name for name, _ in shape.place}
    order = [name for name in keys if name not in placed]
    for name, before in shape.place:
        order.insert(len(order) if before is None else order.index(before), name)
    return tuple(keys[name] for name in order)


def projection_keys(projection: Projection) -> tuple[Key, ...]:
    """The domain-field keys of ``projection``, in its order, under their legacy names."""
    by_field = {key.field: key for key in legacy_keys(projection.source)}
    return tuple(by_field[name] for name in projection.fields)
