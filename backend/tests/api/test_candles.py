"""``GET /api/v1/candles/{symbol}``: the stored closed candles up to the current run's as_of, its parameters and
errors, ETag / 304, and the tiers (memory -> Redis -> database). SQLite + the in-process tiers and PostgreSQL +
Redis; the candles are the bundled real Binance ones, stored past the run's as_of too (those must never show)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.candle_store import CandleQuery, CandleStore
from app.api.track_store import DATABASE, MEMORY, REDIS, SharedTier
from app.config import Settings
from app.domain import Candle, Snapshot, timeframe_ms
from app.storage.candles import CandleRepository
from app.storage.publish import publish
from app.storage.redis_client import RedisClient
from tests.support.api import DEV_AUTH, Breaker, make_settings, running_client
from tests.support.candles import bundled_candles
from tests.support.network import free_port
from tests.support.snapshots import build_snapshot
from tests.support.storage import StorageBackend
from tests.support.waiting import wait_for

HOUR_MS = timeframe_ms("1h")
DAY_MS = timeframe_ms("1d")
STORED = 1100  # per series: more than the largest limit (1000) plus the candles after as_of
STORED_AFTER_AS_OF = 48  # hourly candles stored beyond the run's as_of (a later cycle's): never served with it


@dataclass(frozen=True)
class Stack:
    """A database with candles and a published run, and the settings of an app on it (with Redis on PostgreSQL)."""

    backend: StorageBackend
    settings: Settings
    run: Snapshot
    redis_client: redis.Redis | None


def store_candles(backend: StorageBackend, *, base: str, timeframe: str, until_ms: int) -> list[Candle]:
    """Store the newest ``STORED`` bundled candles of BASE/USDT that open before ``until_ms``; returns them."""
    candles = [c for c in bundled_candles(base, timeframe) if c.open_time_ms < until_ms][-STORED:]
    with backend.session_factory() as session:
        CandleRepository(session).upsert(
            exchange="binance", symbol=f"{base}/USDT", timeframe=timeframe, candles=candles
        )
        session.commit()
    return candles


@pytest.fixture
def stack(backend: StorageBackend, request: pytest.FixtureRequest) -> Stack:
    run = build_snapshot(run_id="run-candles")
    later_ms = int(run.data_as_of.timestamp() * 1000) + STORED_AFTER_AS_OF * HOUR_MS
    for base in ("BTC", "ETH", "AAVE"):  # AAVE is not in the run
        for timeframe in ("1h", "1d"):
            store_candles(backend, base=base, timeframe=timeframe, until_ms=later_ms)
    publish(run, session_factory=backend.session_factory, cache=None)
    client = None
    overrides: dict[str, Any] = {"exchanges": ["binance"]}
    if backend.name == "postgres":
        client = request.getfixturevalue("redis_client")
        overrides |= {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": request.getfixturevalue("redis_prefix"),
        }
    return Stack(backend, make_settings(backend.url, **overrides), run, client)


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with running_client(stack.settings) as test_client:
        yield test_client


def _get(client: TestClient, symbol: str = "BTC", **params: Any) -> Any:
    return client.get(f"/api/v1/candles/{symbol}", params=params, headers=DEV_AUTH)


def _expected(run: Snapshot, base: str, timeframe: str, limit: int) -> list[dict[str, float]]:
    as_of_ms = int(run.data_as_of.timestamp() * 1000)
    step_ms = timeframe_ms(timeframe)
    closed = [c for c in bundled_candles(base, timeframe) if c.open_time_ms + step_ms <= as_of_ms]
    return [
        {"open_time_ms": c.open_time_ms, "open": c.open, "high": c.high, "low": c.low, "close": c.close,
         "volume": c.volume}
        for c in closed[-limit:]
    ]  # fmt: skip


@pytest.mark.parametrize(("timeframe", "limit"), [("1h", 500), ("1d", 30), ("1h", 1000)])
def test_the_newest_closed_candles_up_to_the_runs_as_of(
    client: TestClient, stack: Stack, timeframe: str, limit: int
) -> None:
    response = _get(client, timeframe=timeframe, limit=limit)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["candles"] == _expected(stack.run, "BTC", timeframe, limit)
    assert body["count"] == limit == len(body["candles"])
    assert (body["symbol"], body["timeframe"], body["limit"]) == ("BTC/USDT", timeframe, limit)
    assert (body["run_id"], body["exchange"], body["success"]) == ("run-candles", "binance", True)
    last_close_ms = body["candles"][-1]["open_time_ms"] + timeframe_ms(timeframe)
    assert last_close_ms <= int(stack.run.data_as_of.timestamp() * 1000)  # nothing stored after as_of is served


def test_defaults_spellings_and_a_symbol_outside_the_run(client: TestClient, stack: Stack) -> None:
    default = _get(client).json()
    assert default["timeframe"] == "1h" and default["limit"] == 500 == default["count"]
    for spelling in ("BTC-USDT", "BTC_USDT", "BTC%2FUSDT", "usdt-btc"):
        assert _get(client, spelling).json()["candles"] == default["candles"], spelling
    outside = _get(client, "AAVE", timeframe="1d", limit=10).json()
    assert outside["symbol"] == "AAVE/USDT" and outside["candles"] == _expected(stack.run, "AAVE", "1d", 10)


@pytest.mark.parametrize(
    "case",
    [
        ("BTC", {"timeframe": "4h"}, 422, "invalid_request", "stored timeframes (1h, 1d)"),
        ("BTC", {"limit": 1001}, 422, "invalid_request", "limit"),
        ("BTC", {"limit": 0}, 422, "invalid_request", "limit"),
        ("DOGE2", {}, 404, "unknown_symbol", "has no stored 1h candles on binance and is not in the current run"),
        ("BTC/USDT/X", {}, 422, "invalid_symbol", ""),
        ("BTC", {"exchange": "kraken"}, 404, "unknown_exchange", "binance"),
    ],
)
def test_bad_input_says_what_to_fix(client: TestClient, case: tuple[str, dict[str, Any], int, str, str]) -> None:
    path, params, status, code, words = case
    response = _get(client, path, **params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]


def test_a_pair_of_the_run_without_stored_candles_answers_none(client: TestClient, stack: Stack) -> None:
    assert "SOL/USDT" in stack.run.levels  # analysed, but its candles were never stored here
    body = _get(client, "SOL").json()
    assert (body["symbol"], body["count"], body["candles"]) == ("SOL/USDT", 0, [])


def test_a_key_is_needed_and_a_304_needs_no_body(client: TestClient) -> None:
    assert client.get("/api/v1/candles/BTC").status_code == 401
    first = _get(client, limit=5)
    etag = first.headers["etag"]
    assert etag.startswith('W/"run-candles-') and first.headers["cache-control"].startswith("private, max-age=")
    again = client.get("/api/v1/candles/BTC", params={"limit": 5}, headers={**DEV_AUTH, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = client.get("/api/v1/candles/BTC", params={"limit": 6}, headers={**DEV_AUTH, "If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_a_new_run_moves_the_window_and_the_etag(stack: Stack, client: TestClient) -> None:
    first = _get(client, "ETH", limit=24)
    later = build_snapshot(run_id="run-later", as_of_ms=int(stack.run.data_as_of.timestamp() * 1000) + 24 * HOUR_MS)
    publish(later, session_factory=stack.backend.session_factory, cache=None)
    headers = {**DEV_AUTH, "If-None-Match": first.headers["etag"]}

    answers: list[Any] = []

    def moved() -> bool:
        answers.append(client.get("/api/v1/candles/ETH", params={"limit": 24}, headers=headers))
        return answers[-1].status_code == 200

    wait_for(moved, timeout_s=5, what="the new run's candles", poll_s=0.05)
    second = answers[-1].json()
    assert second["run_id"] == "run-later" and second["candles"] == _expected(later, "ETH", "1h", 24)
    first_last_ms = first.json()["candles"][-1]["open_time_ms"]
    assert second["candles"][-1]["open_time_ms"] == first_last_ms + 24 * HOUR_MS


def test_tiers_database_then_memory_and_use_cache_false(client: TestClient, stack: Stack) -> None:
    sources = [_get(client, limit=50).json()["data_source"] for _ in range(2)]
    assert sources == [DATABASE, MEMORY]
    assert _get(client, limit=50, use_cache="false").json()["data_source"] == DATABASE
    assert _get(client, limit=51).json()["data_source"] == DATABASE  # other parameters: another body
    if stack.redis_client is not None:
        keys = list(stack.redis_client.scan_iter(f"{stack.settings.redis_prefix}:candles:binance:*"))
        assert len(keys) == 2 and 0 < int(stack.redis_client.ttl(keys[0])) <= stack.settings.snapshot_ttl_s


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # the stack with Redis
def test_a_second_api_process_reads_the_candles_from_redis(stack: Stack) -> None:
    with running_client(stack.settings) as first, running_client(stack.settings) as second:
        one, two, three = _get(first, limit=20), _get(second, limit=20), _get(second, limit=20)
    assert [r.json()["data_source"] for r in (one, two, three)] == [DATABASE, REDIS, MEMORY]
    varying = {"data_source": "", "age_seconds": 0}
    assert one.json() | varying == two.json() | varying


def test_a_redis_that_refuses_trips_the_breaker_and_the_database_answers(stack: Stack) -> None:
    dead = RedisClient.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    breaker = Breaker()
    store = CandleStore(
        database=stack.backend.database,
        shared=SharedTier(dead, prefix="dantaro-test", ttl_s=60, breaker=breaker),
    )
    as_of_ms = int(stack.run.data_as_of.timestamp() * 1000)
    query = CandleQuery("binance", "run-candles", "1d", 3, as_of_ms, ("BTC/USDT",), "BTC/USDT")
    body, source = store.get(query)
    assert source == DATABASE and body.count == 3 and body.symbol == "BTC/USDT"
    assert len(breaker.trips) == 1 and "candles: redis RedisConnectionError: cannot connect" in breaker.trips[0]
    assert store.get(query)[1] == MEMORY


def test_before_the_first_run_the_route_answers_503(backend: StorageBackend) -> None:
    with running_client(make_settings(backend.url, exchanges=["binance"])) as client:
        response = _get(client)
    assert response.status_code == 503 and response.json()["error"]["code"] == "data_not_ready"
