"""``horizon=`` on the recommendations, symbols and bundle endpoints: the legacy fields, the order and the filters
follow the chosen horizon, the body names it with its model, unknown or malformed horizons are 422, and each horizon
has its own ETag. Expectations are computed from the published domain snapshot, not from the renderers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.horizons import HORIZON_PATTERN, ServedHorizons, served_horizons
from app.api.schemas import BundleResponse, ErrorResponse, RecommendationsResponse, SymbolsResponse
from app.domain import HorizonScore, Recommendation, Snapshot
from tests.support.api import DEV_AUTH, Database, make_settings, running_client
from tests.support.snapshots import DEFAULT_HORIZON, HORIZON_HOURS, build_snapshot

RECOMMENDATIONS = "/api/v1/recommendations"
SERVED = list(HORIZON_HOURS)  # 1h, 4h, 24h: the factory's served horizons, in its order


def ranked(snapshot: Snapshot, horizon: str) -> list[Recommendation]:
    """The snapshot's recommendations in ``horizon``'s rank order."""
    return sorted(snapshot.recommendations, key=lambda rec: rec.scores_by_horizon[horizon].rank)


def assert_item_at(item: Any, rec: Recommendation, horizon: str, snapshot: Snapshot) -> None:
    """A served recommendation shows ``rec`` at ``horizon``: legacy fields, probability, samples, every horizon."""
    score = rec.scores_by_horizon[horizon]
    assert (item.symbol, item.horizon, item.rank) == (rec.symbol, horizon, score.rank)
    assert item.total_score == pytest.approx(score.score)
    assert item.recommendation_strength == score.label.value
    assert item.probability_outperform == pytest.approx(score.probability_outperform)
    assert item.calibration_samples == snapshot.models[horizon].calibration_samples
    assert item.current_price == pytest.approx(rec.current_price)
    assert item.technical_score == pytest.approx(rec.technical_score)  # the default horizon's, whatever the choice
    served = {name: (s.score, s.rank, s.label, s.probability_outperform) for name, s in item.scores_by_horizon.items()}
    expected = {
        name: (s.score, s.rank, s.label.value, s.probability_outperform) for name, s in rec.scores_by_horizon.items()
    }
    assert served == expected  # floats survive the JSON round trip exactly


def get(client: TestClient, path: str = RECOMMENDATIONS, **params: Any) -> Any:
    response = client.get(path, params=params, headers=DEV_AUTH)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("horizon", [None, *SERVED])
def test_the_legacy_fields_and_the_order_follow_the_horizon(
    client: TestClient, snapshot: Snapshot, horizon: str | None
) -> None:
    chosen = horizon or DEFAULT_HORIZON
    body = RecommendationsResponse.model_validate(get(client, horizon=horizon) if horizon else get(client))
    assert (body.horizon, body.horizons) == (chosen, SERVED)
    expected = ranked(snapshot, chosen)
    assert [item.symbol for item in body.recommendations] == [rec.symbol for rec in expected]
    for item, rec in zip(body.recommendations, expected, strict=True):
        assert_item_at(item, rec, chosen, snapshot)


def test_the_horizons_really_rank_differently(snapshot: Snapshot) -> None:
    orders = {h: [rec.symbol for rec in ranked(snapshot, h)] for h in SERVED}
    assert len({tuple(order) for order in orders.values()}) == len(SERVED)  # else the tests above prove little


def test_filters_apply_to_the_chosen_horizons_score_and_label(client: TestClient, snapshot: Snapshot) -> None:
    for horizon in SERVED:
        scores = sorted(rec.scores_by_horizon[horizon].score for rec in snapshot.recommendations)
        threshold = scores[len(scores) // 2]
        body = get(client, horizon=horizon, min_score=threshold)
        expected = [
            rec.symbol for rec in ranked(snapshot, horizon) if rec.scores_by_horizon[horizon].score >= threshold
        ]
        assert [item["symbol"] for item in body["recommendations"]] == expected
        for label in {rec.scores_by_horizon[horizon].label for rec in snapshot.recommendations}:
            labelled = get(client, horizon=horizon, label=label.value, top_n=2)["recommendations"]
            wanted = [rec.symbol for rec in ranked(snapshot, horizon) if rec.scores_by_horizon[horizon].label is label]
            assert [item["symbol"] for item in labelled] == wanted[:2]
    assert get(client, horizon="1h", label="BUY")["recommendations"] == []  # no edge at 1h: every label is HOLD
    assert get(client, horizon="4h", label="STRONG_SELL")["recommendations"]
    assert get(client, horizon="24h", label="STRONG_SELL")["recommendations"] == []


def test_the_chosen_horizons_model_is_served(client: TestClient, snapshot: Snapshot) -> None:
    for horizon in SERVED:
        model, expected = get(client, horizon=horizon, top_n=1)["model"], snapshot.models[horizon]
        assert model["horizon"] == horizon and model["candles"] == expected.candles
        assert model["weights"] == {name: w for name, w in expected.weights.items() if w}
        assert model["weights_source"] == expected.weights_source
        for name in ("cross_sections", "walk_forward_ic", "walk_forward_t", "calibration_samples", "note"):
            assert model[name] == getattr(expected, name), name
        assert model["labels_active"] is expected.labels_active
        assert [(knot["percentile"], knot["probability"]) for knot in model["calibration"]] == list(
            expected.calibration
        )
        window = [expected.fitted_at, expected.fit_start, expected.fit_end]
        assert [model[name] for name in ("fitted_at", "fit_start", "fit_end")] == [
            None if at is None else at.isoformat() for at in window
        ]


def test_a_horizon_without_an_edge_says_why_its_labels_are_hold(client: TestClient, snapshot: Snapshot) -> None:
    assert not snapshot.models["1h"].labels_active and snapshot.models["24h"].labels_active
    body = get(client, horizon="1h")
    assert body["model"]["labels_active"] is False and "HOLD" in body["model"]["note"]
    assert {item["recommendation_strength"] for item in body["recommendations"]} == {"HOLD"}
    assert {item["probability_outperform"] for item in body["recommendations"]} == {None}
    fitted = get(client, horizon="24h")
    assert fitted["model"]["labels_active"] is True and fitted["model"]["note"] == ""


def test_zero_weights_are_left_out_of_the_served_model(database: Database) -> None:
    base = build_snapshot()
    model = base.models[DEFAULT_HORIZON]
    weights = {**model.weights, "volume": 0.0, "rsi": 0.0}
    models = {**base.models, DEFAULT_HORIZON: dataclasses.replace(model, weights=weights)}
    database.publish(dataclasses.replace(base, models=models))
    with running_client(make_settings(database.url)) as client:
        served = get(client, top_n=1)["model"]["weights"]
    assert served == dict(model.weights) and "volume" not in served


@pytest.mark.parametrize("path", [RECOMMENDATIONS, "/api/v1/symbols"])
def test_an_unserved_horizon_is_422_naming_the_served_ones(client: TestClient, snapshot: Snapshot, path: str) -> None:
    response = client.get(path, params={"horizon": "7d"}, headers=DEV_AUTH)
    assert response.status_code == 422
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == "unknown_horizon"
    assert "'7d'" in error.message and "1h, 4h, 24h" in error.message and "default 24h" in error.message


@pytest.mark.parametrize("horizon", ["", "4", "h", "4H", "1 h", "-4h", "4h;", "1234567h"])
def test_a_malformed_horizon_is_422_even_before_the_first_publish(database: Database, horizon: str) -> None:
    with running_client(make_settings(database.url)) as client:
        for path in (RECOMMENDATIONS, "/api/v1/symbols"):
            response = client.get(path, params={"horizon": horizon}, headers=DEV_AUTH)
            assert response.status_code == 422, (path, response.text)
            assert ErrorResponse.model_validate(response.json()).error.message.startswith("query parameter horizon")
        well_formed = client.get(RECOMMENDATIONS, params={"horizon": "7d"}, headers=DEV_AUTH)
    assert well_formed.status_code == 503  # whether 7d is served is known only once a run is published


def test_symbols_follow_the_horizon(client: TestClient, snapshot: Snapshot) -> None:
    for horizon in (None, *SERVED):
        chosen = horizon or DEFAULT_HORIZON
        body = SymbolsResponse.model_validate(
            get(client, "/api/v1/symbols", **({"horizon": horizon} if horizon else {}))
        )
        assert (body.horizon, body.horizons, body.count) == (chosen, SERVED, len(snapshot.recommendations))
        expected = ranked(snapshot, chosen)
        assert [item.symbol for item in body.symbols] == [rec.symbol for rec in expected]
        for item, rec in zip(body.symbols, expected, strict=True):
            score = rec.scores_by_horizon[chosen]
            assert (item.rank, item.recommendation_strength) == (score.rank, score.label.value)
            assert item.total_score == pytest.approx(score.score)
            assert item.probability_outperform == pytest.approx(score.probability_outperform)


def test_the_bundle_follows_the_horizon_in_its_body(client: TestClient, snapshot: Snapshot) -> None:
    for horizon in SERVED:
        request = {"recommendations_count": 3, "horizon": horizon, "include_market_status": False}
        response = client.post("/api/v1/bundle", json=request, headers=DEV_AUTH)
        body = BundleResponse.model_validate(response.json())
        assert (body.horizon, body.horizons) == (horizon, SERVED)
        assert body.model is not None and body.model.horizon == horizon
        assert body.recommendations is not None
        assert [item.symbol for item in body.recommendations] == [rec.symbol for rec in ranked(snapshot, horizon)[:3]]
        as_get = get(client, horizon=horizon, top_n=3)["recommendations"]
        assert response.json()["recommendations"] == as_get  # the same items as the GET
    default = client.post("/api/v1/bundle", json={}, headers=DEV_AUTH).json()
    assert default["horizon"] == DEFAULT_HORIZON and default["model"]["horizon"] == DEFAULT_HORIZON
    market_only = client.post("/api/v1/bundle", json={"include_recommendations": False}, headers=DEV_AUTH).json()
    assert not {"recommendations", "horizon", "horizons", "model"} & set(market_only)


@pytest.mark.parametrize(
    ("horizon", "code"), [("7d", "unknown_horizon"), ("4H", "invalid_request"), (4, "invalid_request")]
)
def test_a_bad_bundle_horizon_is_422(client: TestClient, horizon: object, code: str) -> None:
    for include in (True, False):
        request = {"horizon": horizon, "include_recommendations": include}
        response = client.post("/api/v1/bundle", json=request, headers=DEV_AUTH)
        assert response.status_code == 422, response.text
        assert ErrorResponse.model_validate(response.json()).error.code == code


def test_each_horizon_has_its_own_etag_and_304(client: TestClient) -> None:
    tags: dict[str, str] = {}
    for horizon in ("4h", "24h"):
        first = client.get(RECOMMENDATIONS, params={"horizon": horizon}, headers=DEV_AUTH)
        tags[horizon] = first.headers["etag"]
        again = client.get(
            RECOMMENDATIONS, params={"horizon": horizon}, headers={**DEV_AUTH, "If-None-Match": tags[horizon]}
        )
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tags[horizon]
    assert tags["4h"] != tags["24h"]
    crossed = client.get(RECOMMENDATIONS, params={"horizon": "24h"}, headers={**DEV_AUTH, "If-None-Match": tags["4h"]})
    assert crossed.status_code == 200 and crossed.json()["horizon"] == "24h"
    unserved = client.get(RECOMMENDATIONS, params={"horizon": "7d"}, headers={**DEV_AUTH, "If-None-Match": "*"})
    assert unserved.status_code == 422  # checked against the run before any 304
    symbols = client.get("/api/v1/symbols", params={"horizon": "4h"}, headers=DEV_AUTH).headers["etag"]
    assert symbols not in tags.values()


def _run(recs: list[Recommendation], models: list[str], *, default: str = "24h") -> Snapshot:
    base = build_snapshot(bases=("BTC", "ETH"))
    return dataclasses.replace(
        base,
        recommendations=tuple(recs),
        models={name: base.models[name] for name in models},
        default_horizon=default,
    )


def test_served_horizons_are_the_models_every_recommendation_has() -> None:
    base = build_snapshot(bases=("BTC", "ETH"))
    recs = list(base.recommendations)
    assert served_horizons(base) == ServedHorizons(names=("1h", "4h", "24h"), default="24h")
    assert served_horizons(_run(recs, ["24h", "4h"], default="1h")) == ServedHorizons(("24h", "4h"), "24h")
    partial: dict[str, HorizonScore] = {h: s for h, s in recs[0].scores_by_horizon.items() if h != "4h"}
    recs[0] = dataclasses.replace(recs[0], scores_by_horizon=partial)
    assert served_horizons(_run(recs, SERVED)).names == ("1h", "24h")
    legacy = dataclasses.replace(base, models={}, default_horizon="")
    assert served_horizons(legacy) == ServedHorizons(names=("1h",), default="1h", legacy=True)


def test_the_openapi_document_declares_horizon_where_it_is_taken(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for route in (RECOMMENDATIONS, "/api/v1/symbols"):
        parameters = {p["name"]: p for p in spec["paths"][route]["get"]["parameters"]}
        assert parameters["horizon"]["schema"]["pattern"] == HORIZON_PATTERN and parameters["horizon"]["description"]
        assert {"exchange", "use_cache"} <= set(parameters)
    market = spec["paths"]["/api/v1/market-status"]["get"]["parameters"]
    assert "horizon" not in {p["name"] for p in market}
    body = spec["components"]["schemas"]["BundleRequest"]["properties"]["horizon"]
    assert body["anyOf"][0]["pattern"] == HORIZON_PATTERN
    recommendations = spec["components"]["schemas"]["RecommendationsResponse"]["properties"]
    assert {"horizon", "horizons", "model"} <= set(recommendations)
