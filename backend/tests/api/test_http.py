"""HTTP behaviour: ETag / 304, Cache-Control, gzip, CORS, docs switch, and the new endpoints (symbols, exchanges,
bundle, recommendation filters) on a snapshot of real Binance prices."""

from __future__ import annotations

import gzip
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.http_cache import matches, max_age_s
from app.api.schemas import (
    BundleResponse,
    ErrorResponse,
    ExchangesResponse,
    RecommendationsResponse,
    SymbolsResponse,
)
from app.config import Settings
from app.domain import Label, Snapshot, utc_now
from tests.support.api import DEV_AUTH, Database, make_settings, running_client
from tests.support.snapshots import build_snapshot

RECOMMENDATIONS = "/api/v1/recommendations"


@pytest.fixture
def api_settings(database: Database) -> Settings:
    """A 300-s schedule, so Cache-Control has a horizon worth measuring."""
    return make_settings(database.url, analysis_interval_s=300)


def test_etag_answers_304_until_the_run_or_the_parameters_change(
    database: Database, snapshot: Snapshot, client: TestClient
) -> None:
    first = client.get(RECOMMENDATIONS, params={"top_n": 3}, headers=DEV_AUTH)
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and snapshot.run_id in etag
    again = client.get(RECOMMENDATIONS, params={"top_n": 3}, headers={**DEV_AUTH, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = client.get(RECOMMENDATIONS, params={"top_n": 4}, headers={**DEV_AUTH, "If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    database.publish(build_snapshot(bases=("BTC", "ETH")))
    after = client.get(RECOMMENDATIONS, params={"top_n": 3, "use_cache": "false"}, headers=DEV_AUTH)
    newer = client.get(
        RECOMMENDATIONS, params={"top_n": 3, "use_cache": "false"}, headers={**DEV_AUTH, "If-None-Match": etag}
    )
    assert after.json()["run_id"] != snapshot.run_id and newer.status_code == 200


def test_cache_control_lasts_until_the_next_expected_run(client: TestClient, snapshot: Snapshot) -> None:
    response = client.get("/api/v1/market-status", headers=DEV_AUTH)
    directive, max_age = response.headers["cache-control"].split(", max-age=")
    assert directive == "private"
    expected = 300 - (utc_now() - snapshot.generated_at).total_seconds()
    assert expected - 2 <= int(max_age) <= expected


def test_max_age_is_floored_at_zero_and_if_none_match_parsing() -> None:
    old = build_snapshot(bases=("BTC",), generated_at=utc_now() - timedelta(hours=1))
    assert max_age_s(old, interval_s=60, now=utc_now()) == 0
    assert matches('"a", W/"run-1-x"', 'W/"run-1-x"') and matches("*", 'W/"x"') and matches('"x"', 'W/"x"')
    assert not matches(None, 'W/"x"') and not matches('"y"', 'W/"x"')


def test_large_bodies_are_gzipped_on_request(client: TestClient) -> None:
    plain = client.get(RECOMMENDATIONS, headers={**DEV_AUTH, "Accept-Encoding": "identity"})
    zipped = client.get(RECOMMENDATIONS, headers={**DEV_AUTH, "Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    small = client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert gzip.compress(plain.content)  # the body is real JSON bytes either way


def test_min_score_and_label_filter_before_top_n(client: TestClient, snapshot: Snapshot) -> None:
    threshold = sorted(rec.total_score for rec in snapshot.recommendations)[len(snapshot.recommendations) // 2]
    body = RecommendationsResponse.model_validate(
        client.get(RECOMMENDATIONS, params={"min_score": threshold}, headers=DEV_AUTH).json()
    )
    expected = [
        rec.symbol for rec in sorted(snapshot.recommendations, key=lambda r: r.rank) if rec.total_score >= threshold
    ]
    assert [item.symbol for item in body.recommendations] == expected
    assert body.total_analyzed == snapshot.universe_size
    label = snapshot.recommendations[0].label
    labelled = client.get(RECOMMENDATIONS, params={"label": label.value, "top_n": 1}, headers=DEV_AUTH).json()
    assert [item["recommendation_strength"] for item in labelled["recommendations"]] == [label.value]
    bad = client.get(RECOMMENDATIONS, params={"label": "MOON"}, headers=DEV_AUTH)
    assert bad.status_code == 422 and ErrorResponse.model_validate(bad.json()).error.code == "invalid_request"
    assert {member.value for member in Label} >= {item.recommendation_strength for item in body.recommendations}


def test_symbols_lists_the_run_with_price_score_and_label(client: TestClient, snapshot: Snapshot) -> None:
    body = SymbolsResponse.model_validate(client.get("/api/v1/symbols", headers=DEV_AUTH).json())
    assert body.count == len(snapshot.recommendations) and body.run_id == snapshot.run_id
    by_symbol = {rec.symbol: rec for rec in snapshot.recommendations}
    for item in body.symbols:
        rec = by_symbol[item.symbol]
        assert item.current_price == pytest.approx(rec.current_price) and item.rank == rec.rank
        assert item.recommendation_strength == rec.label.value and item.has_levels


def test_exchanges_report_each_ones_freshness(client: TestClient, snapshot: Snapshot) -> None:
    response = client.get("/api/v1/exchanges", headers=DEV_AUTH)
    body = ExchangesResponse.model_validate(response.json())
    assert body.default_exchange == "binance"
    binance, upbit = body.exchanges
    assert (binance.exchange, binance.status, binance.run_id) == ("binance", "ready", snapshot.run_id)
    assert binance.as_of == snapshot.data_as_of and binance.stale is False and binance.age_seconds is not None
    assert (upbit.exchange, upbit.status, upbit.run_id, upbit.stale) == ("upbit", "not_ready", None, None)


def test_bundle_returns_the_requested_parts_of_one_run(client: TestClient, snapshot: Snapshot) -> None:
    request = {
        "include_recommendations": True,
        "recommendations_count": 2,
        "include_support_levels": True,
        "symbols": ["BTC", "eth-usdt", "NOPE"],
        "include_market_status": True,
    }
    response = client.post("/api/v1/bundle", json=request, headers=DEV_AUTH)
    assert response.status_code == 200, response.text
    body = BundleResponse.model_validate(response.json())
    assert body.run_id == snapshot.run_id and body.total_analyzed == snapshot.universe_size
    assert body.recommendations is not None and len(body.recommendations) == 2
    assert body.support_levels is not None and set(body.support_levels) == {"BTC/USDT", "ETH/USDT"}
    assert body.support_levels["BTC/USDT"].moderate_support == pytest.approx(
        snapshot.levels["BTC/USDT"].moderate_support
    )
    assert body.unknown_symbols == ["NOPE"]
    assert body.market_status is not None and body.market_status.market_trend == snapshot.market.market_trend
    only_market = client.post("/api/v1/bundle", json={"include_recommendations": False}, headers=DEV_AUTH).json()
    assert "recommendations" not in only_market and "support_levels" not in only_market
    assert "market_status" in only_market


@pytest.mark.parametrize(
    "payload",
    [{"recommendations_count": 0}, {"symbols": ["B$C"], "include_support_levels": True}, {"nope": 1}, [1, 2]],
)
def test_bad_bundle_requests_are_422(client: TestClient, payload: object) -> None:
    response = client.post("/api/v1/bundle", json=payload, headers=DEV_AUTH)
    assert response.status_code == 422
    assert ErrorResponse.model_validate(response.json()).error.message


def test_docs_are_off_in_production_unless_enabled(database: Database, snapshot: Snapshot) -> None:
    production = make_settings(database.url, env="production", dev_key_enabled=False)
    with running_client(production) as client:
        statuses = {path: client.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")}
    assert set(statuses.values()) == {404}
    with running_client(production.model_copy(update={"docs_enabled": True})) as client:
        assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200


def test_cors_allows_only_the_configured_origins(database: Database, snapshot: Snapshot) -> None:
    settings = make_settings(database.url, cors_origins=["https://app.example.com"])
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    with running_client(settings) as client:
        allowed = client.options(RECOMMENDATIONS, headers={"Origin": "https://app.example.com", **preflight})
        denied = client.get(RECOMMENDATIONS, headers={"Origin": "https://evil.example", **DEV_AUTH})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in denied.headers


def test_dantaro_api_in_production_with_the_dev_key_prints_one_line_and_fails(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DANTARO_ENV": "production", "DANTARO_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "api", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "DANTARO_DEV_KEY_ENABLED=false" in result.stderr


def test_every_api_route_refuses_requests_without_a_key(client: TestClient) -> None:
    routes = [route for route in client.app.routes if getattr(route, "path", "").startswith("/api/v1/")]  # type: ignore[attr-defined]
    assert len(routes) >= 6
    for route in routes:
        path = route.path.replace("{symbol:path}", "BTC")
        for method in route.methods:
            response = client.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"


def test_a_route_without_auth_cannot_be_mounted() -> None:
    from fastapi import APIRouter, FastAPI

    from app.api.route_table import add_routes_flat

    router = APIRouter()

    @router.get("/open")
    async def open_route() -> dict[str, str]:
        return {"status": "open"}

    with pytest.raises(TypeError, match="AuthDep or SnapshotsDep"):
        add_routes_flat(FastAPI(), router, prefix="/api/v1", authenticated=True)
