"""The API's data endpoints against a migrated SQLite database holding a snapshot of real Binance prices."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.api.app import ApiState
from app.api.schemas import (
    BundleResponse,
    ErrorResponse,
    HealthResponse,
    MarketStatusResponse,
    RecommendationsResponse,
    SupportLevelsResponse,
    SymbolsResponse,
)
from app.domain import Snapshot, TickersSource, utc_now
from app.storage.cache import MemoryCache
from tests.support.api import DEV_AUTH, Database, make_settings, running_client
from tests.support.snapshots import build_snapshot


def _error(response_json: object) -> ErrorResponse:
    return ErrorResponse.model_validate(response_json)


def test_health_needs_no_key_and_reports_uptime(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = HealthResponse.model_validate(response.json())
    assert body.status == "ok" and body.uptime_s >= 0 and body.version


def test_recommendations_serve_the_published_run(client: TestClient, snapshot: Snapshot) -> None:
    response = client.get("/api/v1/recommendations", headers=DEV_AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = RecommendationsResponse.model_validate(response.json())
    assert body.run_id == snapshot.run_id and body.exchange == "binance"
    assert body.total_analyzed == snapshot.universe_size
    assert body.generated_at == body.cache_timestamp == snapshot.generated_at
    assert body.as_of == snapshot.data_as_of
    assert not body.stale and 0 <= body.age_seconds < 60
    expected = sorted(snapshot.recommendations, key=lambda rec: rec.rank)
    assert [item.symbol for item in body.recommendations] == [rec.symbol for rec in expected]
    first, rec = body.recommendations[0], expected[0]
    assert first.total_score == pytest.approx(rec.total_score)
    assert first.current_price == pytest.approx(rec.current_price)
    assert first.recommendation_strength == rec.label.value
    assert first.analysis_details["max_drawdown_90d"] == pytest.approx(rec.details["max_drawdown_90d"])
    assert first.market_cap is None and first.updated_at == snapshot.generated_at


@pytest.mark.parametrize("top_n", [1, 3, 100])
def test_top_n_limits_the_list(client: TestClient, snapshot: Snapshot, top_n: int) -> None:
    response = client.get("/api/v1/recommendations", params={"top_n": top_n}, headers=DEV_AUTH)
    assert response.status_code == 200
    assert len(response.json()["recommendations"]) == min(top_n, len(snapshot.recommendations))


@pytest.mark.parametrize("top_n", ["0", "101", "-5"])
def test_top_n_out_of_bounds_is_422_naming_the_range(client: TestClient, top_n: str) -> None:
    response = client.get("/api/v1/recommendations", params={"top_n": top_n}, headers=DEV_AUTH)
    assert response.status_code == 422
    error = _error(response.json()).error
    assert error.code == "invalid_request"
    assert error.message == "top_n must be between 1 and 100"


def test_top_n_not_a_number_is_422_naming_the_parameter(client: TestClient) -> None:
    response = client.get("/api/v1/recommendations", params={"top_n": "ten"}, headers=DEV_AUTH)
    assert response.status_code == 422
    assert _error(response.json()).error.message.startswith("query parameter top_n:")


def test_support_levels_of_bitcoin(client: TestClient, snapshot: Snapshot) -> None:
    response = client.get("/api/v1/support-levels/BTC", headers=DEV_AUTH)
    assert response.status_code == 200
    body = SupportLevelsResponse.model_validate(response.json())
    expected = snapshot.levels["BTC/USDT"]
    assert body.symbol == body.support_levels.symbol == "BTC/USDT"
    levels = body.support_levels
    assert levels.aggressive_support == pytest.approx(expected.aggressive_support)
    assert levels.conservative_resistance == pytest.approx(expected.conservative_resistance)
    assert levels.data_points_count == expected.data_points_count
    assert [level.price for level in levels.levels] == pytest.approx([level.price for level in expected.levels])
    assert levels.levels[0].last_touched_at == expected.levels[0].last_touched_at
    assert levels.levels[0].sources == list(expected.levels[0].sources)
    assert body.run_id == snapshot.run_id and body.as_of == snapshot.data_as_of


def test_support_levels_serve_the_runs_pivots_and_volume_profile(client: TestClient, snapshot: Snapshot) -> None:
    served = client.get("/api/v1/support-levels/ETH", headers=DEV_AUTH).json()["support_levels"]
    expected = snapshot.levels["ETH/USDT"]
    assert expected.pivots is not None and expected.volume_profile is not None
    pivots = {**dataclasses.asdict(expected.pivots), "period_start": expected.pivots.period_start.isoformat()}
    assert served["pivots"] == pivots
    assert served["volume_profile"] == dataclasses.asdict(expected.volume_profile)


def test_levels_published_without_pivots_or_profile_serve_nulls(database: Database) -> None:
    snapshot = build_snapshot()
    bare = {symbol: dataclasses.replace(lv, pivots=None, volume_profile=None) for symbol, lv in snapshot.levels.items()}
    database.publish(dataclasses.replace(snapshot, levels=bare))
    with running_client(make_settings(database.url)) as client:
        body = client.get("/api/v1/support-levels/BTC", headers=DEV_AUTH).json()
    levels = SupportLevelsResponse.model_validate(body).support_levels
    assert (levels.pivots, levels.volume_profile) == (None, None)
    assert [level.price for level in levels.levels] == [level.price for level in snapshot.levels["BTC/USDT"].levels]


@pytest.mark.parametrize("written", ["BTC", "btc", "BTC-USDT", "BTC_USDT", "USDT-BTC", "BTC%2FUSDT", "BTC/USDT"])
def test_every_symbol_format_resolves(client: TestClient, written: str) -> None:
    response = client.get(f"/api/v1/support-levels/{written}", headers=DEV_AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["symbol"] == "BTC/USDT"


def test_unknown_symbol_is_404_saying_how_to_list_symbols(client: TestClient) -> None:
    response = client.get("/api/v1/support-levels/NOPE", headers=DEV_AUTH)
    assert response.status_code == 404
    error = _error(response.json()).error
    assert error.code == "unknown_symbol"
    assert "NOPE" in error.message and "/api/v1/symbols" in error.message


@pytest.mark.parametrize("written", ["BTC$USDT", "A-B-C", "%20"])
def test_malformed_symbol_is_422(client: TestClient, written: str) -> None:
    response = client.get(f"/api/v1/support-levels/{written}", headers=DEV_AUTH)
    assert response.status_code == 422
    assert _error(response.json()).error.code == "invalid_symbol"


def test_market_status(client: TestClient, snapshot: Snapshot) -> None:
    response = client.get("/api/v1/market-status", headers=DEV_AUTH)
    assert response.status_code == 200
    body = MarketStatusResponse.model_validate(response.json())
    market = body.market_status
    assert body.status == "ok" and body.total_symbols == snapshot.universe_size
    assert market.market_trend == snapshot.market.market_trend
    assert market.total_volume_24h == pytest.approx(snapshot.market.total_volume_24h)
    assert [mover.symbol for mover in market.top_gainers] == [symbol for symbol, _ in snapshot.market.top_gainers]
    assert market.total_market_cap is None and market.updated_at == snapshot.generated_at
    health = body.system_health
    assert health.status == "healthy" and health.run_id == snapshot.run_id
    assert health.symbols_analysed == len(snapshot.recommendations)
    assert health.data_source == body.data_source


def test_old_run_is_reported_stale(database: Database) -> None:
    old = build_snapshot(bases=("BTC", "ETH"), generated_at=utc_now() - timedelta(hours=3))
    database.publish(old)
    with running_client(make_settings(database.url)) as client:
        body = client.get("/api/v1/market-status", headers=DEV_AUTH).json()
    assert body["stale"] is True and body["system_health"]["status"] == "stale"
    assert body["age_seconds"] > 3 * 3600 - 60


DATA_REQUESTS = [
    ("GET", "/api/v1/recommendations", None, RecommendationsResponse),
    ("GET", "/api/v1/support-levels/BTC", None, SupportLevelsResponse),
    ("GET", "/api/v1/market-status", None, MarketStatusResponse),
    ("GET", "/api/v1/symbols", None, SymbolsResponse),
    ("POST", "/api/v1/bundle", {"include_support_levels": True, "symbols": ["BTC"]}, BundleResponse),
]


@pytest.mark.parametrize("tickers_source", list(TickersSource))
@pytest.mark.parametrize("use_cache", ["true", "false"])
def test_every_data_payload_says_where_the_24h_statistics_came_from(
    database: Database, tickers_source: TickersSource, use_cache: str
) -> None:
    database.publish(dataclasses.replace(build_snapshot(bases=("BTC", "ETH")), tickers_source=tickers_source))
    with running_client(make_settings(database.url)) as client:
        for method, path, payload, model in DATA_REQUESTS:
            response = client.request(method, path, params={"use_cache": use_cache}, json=payload, headers=DEV_AUTH)
            assert response.status_code == 200, (path, response.text)
            assert response.json()["tickers_source"] == tickers_source.value, path
            assert model.model_validate(response.json()).tickers_source == tickers_source.value


def test_use_cache_false_reads_the_database(database: Database, snapshot: Snapshot) -> None:
    cache = MemoryCache()
    cache.put(snapshot)
    state = ApiState(cache=cache, database=database.database)
    with running_client(make_settings(database.url), state=state) as client:
        cached = client.get("/api/v1/recommendations", headers=DEV_AUTH).json()
        fresh = client.get("/api/v1/recommendations", params={"use_cache": "false"}, headers=DEV_AUTH).json()
    assert cached["data_source"] in {"cache", "memory"}
    assert fresh["data_source"] == "database"
    assert fresh["run_id"] == cached["run_id"] == snapshot.run_id


def test_a_newer_run_replaces_the_served_one(database: Database, snapshot: Snapshot) -> None:
    cache = MemoryCache()
    state = ApiState(cache=cache, database=database.database)
    with running_client(make_settings(database.url), state=state) as client:
        newer = build_snapshot(bases=("ETH", "SOL"))
        database.publish(newer, cache=cache)
        body = client.get("/api/v1/recommendations", headers=DEV_AUTH).json()
    assert body["run_id"] == newer.run_id and body["data_source"] == "cache"
    assert {item["symbol"] for item in body["recommendations"]} == {"ETH/USDT", "SOL/USDT"}


def test_unknown_exchange_is_404_listing_the_configured_ones(client: TestClient) -> None:
    response = client.get("/api/v1/market-status", params={"exchange": "mtgox"}, headers=DEV_AUTH)
    assert response.status_code == 404
    error = _error(response.json()).error
    assert error.code == "unknown_exchange" and "binance, upbit" in error.message


def test_exchange_parameter_selects_the_exchange(client: TestClient) -> None:
    response = client.get("/api/v1/market-status", params={"exchange": "BINANCE"}, headers=DEV_AUTH)
    assert response.status_code == 200 and response.json()["exchange"] == "binance"


@pytest.mark.parametrize("path", ["/api/v1/recommendations", "/api/v1/market-status", "/api/v1/support-levels/BTC"])
def test_before_the_first_publish_every_endpoint_is_503(database: Database, path: str) -> None:
    with running_client(make_settings(database.url)) as client:
        response = client.get(path, headers=DEV_AUTH)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    error = _error(response.json()).error
    assert error.code == "data_not_ready" and "binance" in error.message and "retry" in error.message


@pytest.mark.parametrize("path", ["/api/v1/recommendations?top_n=0", "/api/v1/support-levels/B$C"])
def test_bad_parameters_are_422_even_before_the_first_publish(database: Database, path: str) -> None:
    with running_client(make_settings(database.url)) as client:
        response = client.get(path, headers=DEV_AUTH)
    assert response.status_code == 422, response.text


def test_an_exchange_without_a_run_is_503_while_others_serve(client: TestClient) -> None:
    response = client.get("/api/v1/recommendations", params={"exchange": "upbit"}, headers=DEV_AUTH)
    assert response.status_code == 503 and "upbit" in response.json()["error"]["message"]


def test_timestamps_are_iso_8601_utc(client: TestClient, snapshot: Snapshot) -> None:
    body = client.get("/api/v1/recommendations", params={"top_n": 1}, headers=DEV_AUTH).json()
    for value in (body["generated_at"], body["as_of"], body["recommendations"][0]["updated_at"]):
        assert datetime.fromisoformat(value).utcoffset() == timedelta(0)
    assert datetime.fromisoformat(body["as_of"]) == snapshot.data_as_of
