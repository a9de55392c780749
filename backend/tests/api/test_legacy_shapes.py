"""The light API's names come from one table (``legacy_shapes.SHAPES``): the renderers and the response models derive
from it, keep the legacy keys and their order, and pick up a new domain field with no edit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from app.api import schemas
from app.api.legacy_shapes import SHAPES, legacy_keys
from app.api.renderers import (
    legacy_view,
    market_view,
    model_view,
    recommendations_view,
    support_levels_view,
    symbols_view,
)
from app.api.responses import dump_json
from app.domain import (
    HorizonModel,
    HorizonScore,
    Level,
    MarketStatus,
    PivotPoints,
    Recommendation,
    Snapshot,
    SupportLevels,
    VolumeProfileLevels,
)
from tests.support.api import Database, make_settings, running_client

MakeSnapshot = Callable[..., Snapshot]

# The original API's keys in their served order (a new domain field may appear between them, never reorder them).
LEGACY_ORDER: dict[type, list[str]] = {
    Recommendation: [
        "symbol",
        "rank",
        "total_score",
        "technical_score",
        "volume_score",
        "volatility_score",
        "risk_score",
        "recommendation_strength",
        "current_price",
        "price_change_24h",
        "volume_24h",
        "market_cap",
        "analysis_details",
        "horizon",
        "probability_outperform",
        "calibration_samples",
        "scores_by_horizon",
        "updated_at",
    ],
    SupportLevels: [
        "symbol",
        "aggressive_support",
        "moderate_support",
        "conservative_support",
        "aggressive_resistance",
        "moderate_resistance",
        "conservative_resistance",
        "calculation_method",
        "data_points_count",
        "updated_at",
        "levels",
        "pivots",
        "volume_profile",
    ],
    PivotPoints: ["period_start", "high", "low", "close", "pivot", "r1", "r2", "s1", "s2"],
    VolumeProfileLevels: ["poc", "value_area_high", "value_area_low", "value_area_share"],
    Level: ["price", "kind", "strength", "sources", "touches", "last_touched_at", "distance_pct"],
    HorizonScore: ["score", "rank", "label", "probability_outperform"],
    HorizonModel: [
        "horizon",
        "candles",
        "weights",
        "weights_source",
        "fitted_at",
        "fit_start",
        "fit_end",
        "cross_sections",
        "walk_forward_ic",
        "walk_forward_t",
        "calibration",
        "calibration_samples",
        "labels_active",
        "note",
    ],
    MarketStatus: [
        "market_trend",
        "market_sentiment",
        "overall_score",
        "active_coins_count",
        "total_market_cap",
        "total_volume_24h",
        "analysis_summary",
        "updated_at",
        "top_gainers",
        "top_losers",
        "average_volatility",
        "details",
    ],
}
SYMBOL_ORDER = [
    "symbol",
    "rank",
    "current_price",
    "price_change_24h",
    "total_score",
    "recommendation_strength",
    "probability_outperform",
    "has_levels",
]
DERIVED = {
    Recommendation: schemas.RecommendationItem,
    SupportLevels: schemas.SupportLevelsBody,
    Level: schemas.LevelItem,
    MarketStatus: schemas.MarketStatusBody,
    HorizonScore: schemas.HorizonScoreItem,
    HorizonModel: schemas.HorizonModelBody,
    PivotPoints: schemas.item_model(PivotPoints),
    VolumeProfileLevels: schemas.item_model(VolumeProfileLevels),
}


def _in_order(keys: Sequence[str], pinned: Sequence[str]) -> bool:
    """Every pinned key is present and they keep their relative order."""
    positions = [keys.index(key) for key in pinned if key in keys]
    return len(positions) == len(pinned) and positions == sorted(positions)


@pytest.mark.parametrize("cls", list(LEGACY_ORDER), ids=lambda cls: cls.__name__)
def test_the_legacy_keys_keep_their_names_and_order(cls: type) -> None:
    keys = [key.name for key in legacy_keys(cls)]
    assert _in_order(keys, LEGACY_ORDER[cls]), keys
    assert list(DERIVED[cls].model_fields) == keys  # the model documents exactly what is served, in order
    assert set(SHAPES) == set(LEGACY_ORDER)


def test_the_renderers_serve_the_legacy_keys_and_values(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(run_id="run-legacy")
    at = snapshot.generated_at
    first = recommendations_view(snapshot)[0]
    rec = min(snapshot.recommendations, key=lambda item: item.rank)
    assert list(first) == LEGACY_ORDER[Recommendation]
    assert first["recommendation_strength"] == rec.label.value and type(first["recommendation_strength"]) is str
    assert first["analysis_details"] == rec.details and first["market_cap"] is None and first["updated_at"] == at
    levels = next(iter(snapshot.levels.values()))
    body = support_levels_view(levels, updated_at=at)
    assert list(body) == LEGACY_ORDER[SupportLevels] and list(body["levels"][0]) == LEGACY_ORDER[Level]
    assert body["levels"][0]["sources"] == levels.levels[0].sources
    assert levels.pivots is not None and levels.volume_profile is not None
    assert list(body["pivots"]) == LEGACY_ORDER[PivotPoints] and body["pivots"]["r2"] == levels.pivots.r2
    assert list(body["volume_profile"]) == LEGACY_ORDER[VolumeProfileLevels]
    assert body["volume_profile"]["poc"] == levels.volume_profile.poc
    unmeasured = support_levels_view(dataclasses.replace(levels, pivots=None, volume_profile=None), updated_at=at)
    assert unmeasured["pivots"] is None and unmeasured["volume_profile"] is None
    market = market_view(snapshot.market, updated_at=at)
    assert list(market) == LEGACY_ORDER[MarketStatus] and market["total_market_cap"] is None
    gainer_symbol, gainer_change = snapshot.market.top_gainers[0]
    assert market["top_gainers"][0] == {"symbol": gainer_symbol, "price_change_24h": gainer_change}
    symbols = symbols_view(snapshot)
    assert list(symbols[0]) == SYMBOL_ORDER and symbols[0]["has_levels"] == (rec.symbol in snapshot.levels)
    assert list(schemas.SymbolItem.model_fields) == SYMBOL_ORDER


def test_the_derived_models_accept_the_served_json_and_stay_strict(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(run_id="run-strict")
    at = snapshot.generated_at
    served: list[tuple[type[BaseModel], Any]] = [
        (schemas.RecommendationItem, recommendations_view(snapshot)[0]),
        (schemas.SupportLevelsBody, legacy_view(next(iter(snapshot.levels.values())), updated_at=at)),
        (schemas.MarketStatusBody, legacy_view(snapshot.market, updated_at=at)),
        (schemas.SymbolItem, symbols_view(snapshot)[0]),
    ]
    for model, view in served:
        document = dump_json(view)
        model.model_validate_json(document)
        with pytest.raises(ValidationError, match="extra"):
            model.model_validate_json(dump_json({**view, "unexpected": 1}))
    with pytest.raises(ValidationError, match="STRONG_BUY"):
        schemas.RecommendationItem.model_validate({**served[0][1], "recommendation_strength": "MAYBE"})
    level = legacy_view(snapshot.levels[next(iter(snapshot.levels))].levels[0], updated_at=at)
    with pytest.raises(ValidationError, match="support"):
        schemas.LevelItem.model_validate({**level, "kind": "sideways"})


def test_horizon_scores_and_models_are_served_in_their_shapes(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(run_id="run-horizon-shapes")
    for view in recommendations_view(snapshot, "4h"):
        for name, score in view["scores_by_horizon"].items():
            assert list(score) == LEGACY_ORDER[HorizonScore], name
            assert type(score["label"]) is str and score["label"] == view["scores_by_horizon"][name]["label"]
        schemas.RecommendationItem.model_validate_json(dump_json(view))
    model = snapshot.models["24h"]
    weights = {**model.weights, "rsi": 0.0}
    widened = dataclasses.replace(
        snapshot, models={**snapshot.models, "24h": dataclasses.replace(model, weights=weights)}
    )
    view = model_view(widened, "24h")
    assert view is not None and list(view) == LEGACY_ORDER[HorizonModel]
    assert view["weights"] == dict(model.weights)  # the zero weight is left out
    assert view["calibration"] == [{"percentile": p, "probability": q} for p, q in model.calibration]
    schemas.HorizonModelBody.model_validate_json(dump_json(view))
    with pytest.raises(ValidationError, match="fitted"):
        schemas.HorizonModelBody.model_validate({**view, "weights_source": "guessed"})
    assert model_view(dataclasses.replace(snapshot, models={}), "24h") is None


def test_a_new_domain_field_is_served_and_documented_without_an_edit(
    make_snapshot: MakeSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Widened(Recommendation):
        conviction: float = 0.0

    monkeypatch.setitem(SHAPES, Widened, SHAPES[Recommendation])  # as if Recommendation itself had the field
    snapshot = make_snapshot(run_id="run-widened")
    rec = snapshot.recommendations[0]
    widened = Widened(**{field.name: getattr(rec, field.name) for field in dataclasses.fields(rec)}, conviction=0.75)
    view = legacy_view(widened, updated_at=snapshot.generated_at)
    assert view["conviction"] == 0.75
    assert list(view) == [*LEGACY_ORDER[Recommendation][:-1], "conviction", "updated_at"]
    model = schemas.item_model(Widened)
    assert model.model_fields["conviction"].annotation is float and model.model_fields["conviction"].is_required()
    model.model_validate_json(dump_json(view))


def test_openapi_keeps_the_component_names(database: Database) -> None:
    with running_client(make_settings(database.url)) as client:
        components = client.get("/openapi.json").json()["components"]["schemas"]
    names = {"RecommendationItem", "LevelItem", "SupportLevelsBody", "MarketStatusBody", "Mover", "SymbolItem"}
    horizons = {"HorizonScoreItem", "HorizonModelBody", "CalibrationKnot"}
    names |= horizons
    assert names <= set(components)
    for name in horizons - {"CalibrationKnot"}:
        undocumented = [key for key, field in components[name]["properties"].items() if not field.get("description")]
        assert undocumented == [], name
    item = components["RecommendationItem"]["properties"]
    new_keys = ("horizon", "probability_outperform", "calibration_samples", "scores_by_horizon")
    assert all(item[key]["description"] for key in new_keys)
    assert item["scores_by_horizon"]["additionalProperties"] == {"$ref": "#/components/schemas/HorizonScoreItem"}
    assert not [name for name in components if "__" in name or name.endswith(("-Input", "-Output"))]
    for name in names:
        assert components[name]["additionalProperties"] is False, name
        assert components[name]["description"]
    strength = components["RecommendationItem"]["properties"]["recommendation_strength"]
    assert strength["enum"] == ["STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL"]
    gainers = components["MarketStatusBody"]["properties"]["top_gainers"]
    assert gainers["items"] == {"$ref": "#/components/schemas/Mover"}


def test_unknown_types_have_no_legacy_shape() -> None:
    with pytest.raises(KeyError):
        legacy_keys(Snapshot)
