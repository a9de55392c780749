"""Old clients keep working: every field the API served before issue 10 keeps its name, JSON type, enum, format and
required-ness, in the OpenAPI document and in real bodies of every endpoint, for a run with per-horizon models and for
a run published before migration 0003 (no models, no ``scores_by_horizon``, empty ``default_horizon``), which is still
served as one horizon named by its timeframe.

The old fields are pinned in ``tests/fixtures/api/legacy_contract.json``, generated from the OpenAPI document of
commit 7814511 (the API before issue 10) as ``tests/support/contract.py`` describes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api import schemas
from app.domain import Snapshot
from tests.support.api import DEV_AUTH, Database, make_settings, running_client
from tests.support.contract import Contract, contract_of, violations
from tests.support.paths import TESTS_DIR
from tests.support.snapshots import build_snapshot

LEGACY: Contract = json.loads((TESTS_DIR / "fixtures" / "api" / "legacy_contract.json").read_text(encoding="utf-8"))
OLD_CLIENT_REQUESTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {  # endpoint -> (method, url, json body)
    "GET /health": ("GET", "/health", None),
    "GET /api/v1/recommendations": ("GET", "/api/v1/recommendations", None),
    "GET /api/v1/support-levels/{symbol}": ("GET", "/api/v1/support-levels/BTC", None),
    "GET /api/v1/market-status": ("GET", "/api/v1/market-status", None),
    "GET /api/v1/symbols": ("GET", "/api/v1/symbols", None),
    "GET /api/v1/exchanges": ("GET", "/api/v1/exchanges", None),
    "POST /api/v1/bundle": ("POST", "/api/v1/bundle", {"include_support_levels": True, "symbols": ["BTC", "NOPE"]}),
}


def pre_0003(snapshot: Snapshot) -> Snapshot:
    """``snapshot`` as a run published before migration 0003 reads back: no horizons, no models."""
    recs = tuple(
        dataclasses.replace(rec, horizon="", probability_outperform=None, calibration_samples=0, scores_by_horizon={})
        for rec in snapshot.recommendations
    )
    return dataclasses.replace(snapshot, recommendations=recs, models={}, default_horizon="")


@pytest.fixture(params=["horizons", "pre_0003"])
def served(request: pytest.FixtureRequest, database: Database) -> Iterator[tuple[TestClient, Snapshot]]:
    """A client serving a run with per-horizon models, or one published before them."""
    snapshot = build_snapshot()
    snapshot = pre_0003(snapshot) if request.param == "pre_0003" else snapshot
    database.publish(snapshot)
    with running_client(make_settings(database.url)) as client:
        yield client, snapshot


def _body(client: TestClient, endpoint: str) -> Any:
    method, url, payload = OLD_CLIENT_REQUESTS[endpoint]
    response = client.request(method, url, json=payload, headers=DEV_AUTH)
    assert response.status_code == 200, (endpoint, response.text)
    return response.json()


def test_every_old_endpoint_is_asked() -> None:
    assert set(OLD_CLIENT_REQUESTS) == set(LEGACY)
    assert all(len(fields) >= 3 for fields in LEGACY.values())


def test_the_openapi_document_keeps_every_old_field_as_it_was(client: TestClient) -> None:
    current = contract_of(client.get("/openapi.json").json())
    for endpoint, fields in LEGACY.items():
        changed = {path: (entry, current[endpoint].get(path)) for path, entry in fields.items()}
        assert {path: pair for path, pair in changed.items() if pair[0] != pair[1]} == {}, endpoint


def test_old_clients_get_the_old_fields_with_their_types(served: tuple[TestClient, Snapshot]) -> None:
    client, _ = served
    for endpoint, fields in LEGACY.items():
        body = _body(client, endpoint)
        assert violations(body, fields) == [], endpoint


def test_the_contract_check_catches_a_changed_type_a_new_enum_value_and_a_missing_field(client: TestClient) -> None:
    fields = LEGACY["GET /api/v1/recommendations"]
    body = _body(client, "GET /api/v1/recommendations")
    first = body["recommendations"][0]
    first["rank"], first["market_cap"], first["recommendation_strength"] = "1", 0, "MAYBE"
    del body["recommendations"][1]["updated_at"]
    body["generated_at"] = "yesterday"
    assert sorted(violations(body, fields)) == [
        "generated_at: 'yesterday' is not an ISO 8601 date-time",
        "recommendations/0/market_cap: integer is not ['null']",
        "recommendations/0/rank: string is not ['integer']",
        "recommendations/0/recommendation_strength: 'MAYBE' is not one of "
        "['BUY', 'HOLD', 'SELL', 'STRONG_BUY', 'STRONG_SELL']",
        "recommendations/1/updated_at: missing",
    ]


def test_the_openapi_document_describes_every_served_field(served: tuple[TestClient, Snapshot]) -> None:
    client, _ = served
    paths = client.get("/openapi.json").json()["paths"]
    for endpoint in OLD_CLIENT_REQUESTS:
        method, route = endpoint.split(" ")
        schema = paths[route][method.lower()]["responses"]["200"]["content"]["application/json"]["schema"]
        model = getattr(schemas, schema["$ref"].rsplit("/", 1)[-1])
        model.model_validate(_body(client, endpoint))  # strict models: an undocumented field fails


def test_a_run_from_before_per_horizon_scores_is_served_as_one_horizon(database: Database) -> None:
    snapshot = pre_0003(build_snapshot())
    database.publish(snapshot)
    expected = sorted(snapshot.recommendations, key=lambda rec: rec.rank)
    with running_client(make_settings(database.url)) as client:
        body = client.get("/api/v1/recommendations", headers=DEV_AUTH).json()
        named = client.get("/api/v1/recommendations", params={"horizon": "1h"}, headers=DEV_AUTH).json()
        unserved = client.get("/api/v1/recommendations", params={"horizon": "24h"}, headers=DEV_AUTH)
        symbols = client.get("/api/v1/symbols", headers=DEV_AUTH).json()
    assert (body["horizon"], body["horizons"], body["model"]) == ("1h", ["1h"], None)
    assert named["recommendations"] == body["recommendations"]
    assert [item["symbol"] for item in body["recommendations"]] == [rec.symbol for rec in expected]
    for item, rec in zip(body["recommendations"], expected, strict=True):
        assert (item["rank"], item["total_score"], item["recommendation_strength"]) == (
            rec.rank,
            rec.total_score,
            rec.label.value,
        )
        assert item["horizon"] == "1h" and item["probability_outperform"] is None
        assert item["scores_by_horizon"] == {
            "1h": {"score": rec.total_score, "rank": rec.rank, "label": rec.label.value, "probability_outperform": None}
        }
    assert unserved.status_code == 422 and "served: 1h" in unserved.json()["error"]["message"]
    assert (symbols["horizon"], symbols["horizons"]) == ("1h", ["1h"])
