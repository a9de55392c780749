"""The three tiers through running API apps: memory -> Redis -> database, notifications, failover, recovery.

Runs on SQLite + in-process cache and on PostgreSQL + Redis. A "Redis down" is a second client pointed at a
socket that accepts connections and never answers (so every call costs a real timeout), never the shared Redis.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.app import ApiState
from app.config import Settings
from app.domain import Snapshot
from app.storage.cache import CacheError, MemoryCache, RedisCache, SnapshotCache
from app.storage.publish import publish
from app.storage.reader import SnapshotReader
from app.storage.redis_py import RedisPyClient
from tests.support.api import DEV_AUTH, make_settings, running_client
from tests.support.clocks import ManualClock
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend
from tests.support.waiting import wait_for

RECOMMENDATIONS = "/api/v1/recommendations"


def _settings(backend: StorageBackend, **overrides: Any) -> Settings:
    return make_settings(backend.url, **{"exchanges": ["binance"], **overrides})


@pytest.fixture
def silent_redis_url() -> Iterator[str]:
    """A TCP port that accepts connections and never replies: each Redis call ends in a socket timeout."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def _run_id(client: TestClient) -> str:
    response = client.get(RECOMMENDATIONS, params={"top_n": 1}, headers=DEV_AUTH)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


@pytest.mark.redis
def test_a_new_run_reaches_two_api_processes_by_notification(
    backend: StorageBackend, redis_client: redis.Redis, redis_url: str, redis_prefix: str, make_snapshot: MakeSnapshot
) -> None:
    worker_cache = RedisCache(RedisPyClient(redis_client), prefix=redis_prefix, ttl_s=300)
    publish(make_snapshot(run_id="run-a"), session_factory=backend.session_factory, cache=worker_cache)
    settings = _settings(backend, redis_url=redis_url, redis_prefix=redis_prefix)
    with running_client(settings) as first, running_client(settings) as second:
        wait_for(
            lambda: redis_client.pubsub_numsub(worker_cache.channel)[0][1] >= 2,
            timeout_s=3,
            what="both APIs to subscribe",
            poll_s=0.01,
        )
        assert _run_id(first) == _run_id(second) == "run-a"
        assert first.get(RECOMMENDATIONS, headers=DEV_AUTH).json()["data_source"] == "memory"
        publish(make_snapshot(run_id="run-b"), session_factory=backend.session_factory, cache=worker_cache)
        # Well inside the 1-s periodic pointer check: the notification dropped the in-process copies.
        elapsed_s = wait_for(
            lambda: _run_id(first) == "run-b" and _run_id(second) == "run-b",
            timeout_s=1.0,
            what="both APIs to serve run-b",
            poll_s=0.01,
        )
        assert elapsed_s < 0.5
        body = second.get(RECOMMENDATIONS, headers=DEV_AUTH).json()
    assert body["run_id"] == "run-b" and body["data_source"] in {"redis", "memory"}


def test_a_new_run_reaches_the_api_sharing_an_in_process_cache(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    cache = MemoryCache()
    publish(make_snapshot(run_id="run-a"), session_factory=backend.session_factory, cache=cache)
    state = ApiState(cache=cache, database=backend.database)
    with running_client(_settings(backend), state=state) as client:
        assert _run_id(client) == "run-a"
        publish(make_snapshot(run_id="run-b"), session_factory=backend.session_factory, cache=cache)
        assert _run_id(client) == "run-b"  # the subscription dropped the copy synchronously


def test_a_silent_redis_costs_one_timeout_then_the_database_serves(
    backend: StorageBackend, silent_redis_url: str, make_snapshot: MakeSnapshot
) -> None:
    publish(make_snapshot(run_id="run-a"), session_factory=backend.session_factory, cache=None)
    settings = _settings(backend, redis_url=silent_redis_url, redis_timeout_s=0.3, redis_retry_after_s=30)
    with running_client(settings) as client:
        started = time.monotonic()
        first = client.get(RECOMMENDATIONS, headers=DEV_AUTH)
        first_s = time.monotonic() - started
        started = time.monotonic()
        later = [client.get(RECOMMENDATIONS, params={"top_n": n}, headers=DEV_AUTH) for n in range(1, 6)]
        later_s = time.monotonic() - started
        health = client.get("/api/v1/market-status", headers=DEV_AUTH).json()["system_health"]
    assert first.status_code == 200 and first.json()["data_source"] == "database"
    assert 0.25 <= first_s < 1.0  # one socket timeout, no retry
    assert all(response.status_code == 200 for response in later)
    assert later_s < 0.5  # the breaker keeps Redis out of the way
    assert health["cache_status"] == "down" and health["status"] == "degraded"


class FlakyCache:
    """A real cache that can be switched to failing, as a Redis outage would."""

    def __init__(self, inner: SnapshotCache) -> None:
        self.inner = inner
        self.source_name = inner.source_name
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise CacheError("redis ConnectionError: connection refused")

    def put(self, snapshot: Snapshot) -> None:
        self._check()
        self.inner.put(snapshot)

    def current_run_id(self, exchange: str) -> str | None:
        self._check()
        return self.inner.current_run_id(exchange)

    def get(self, exchange: str, run_id: str) -> Snapshot | None:
        self._check()
        return self.inner.get(exchange, run_id)


def test_the_reader_leaves_a_failing_cache_and_returns_when_it_is_back(
    backend: StorageBackend, cache: SnapshotCache, make_snapshot: MakeSnapshot
) -> None:
    flaky, clock = FlakyCache(cache), ManualClock(500.0)
    reader = SnapshotReader(database=backend.database, cache=flaky, clock_s=clock, cache_retry_after_s=5.0)
    publish(make_snapshot(run_id="run-a"), session_factory=backend.session_factory, cache=flaky)
    assert reader.get("binance") is not None and reader.get("binance")[1] == "memory"  # type: ignore[index]
    flaky.down = True
    publish(make_snapshot(run_id="run-b"), session_factory=backend.session_factory, cache=None)
    clock.now_s += 1.5
    snapshot, source = reader.get("binance") or (None, None)
    assert snapshot is not None and (snapshot.run_id, source) == ("run-b", "database")
    calls = flaky.calls
    for _ in range(3):
        clock.now_s += 1.5  # inside the 5-s breaker window: the cache is not asked again
        assert reader.get("binance") is not None
    assert flaky.calls == calls and reader.cache_status() == "down"
    flaky.down = False
    publish(make_snapshot(run_id="run-c"), session_factory=backend.session_factory, cache=flaky)
    clock.now_s += 5.0
    snapshot, source = reader.get("binance") or (None, None)
    assert snapshot is not None and (snapshot.run_id, source) == ("run-c", flaky.source_name)
    assert reader.cache_status() == "ok"


def test_notifications_drop_only_superseded_copies(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    cache, clock = MemoryCache(), ManualClock(500.0)
    reader = SnapshotReader(database=backend.database, cache=cache, clock_s=clock)
    publish(make_snapshot(run_id="run-a"), session_factory=backend.session_factory, cache=cache)
    assert reader.get("binance") is not None
    reader.on_published("binance", "run-a")
    assert reader.peek("binance") is not None
    reader.on_published("binance", "run-z")
    assert reader.peek("binance") is None


def _at_horizon(client: TestClient, horizon: str, **params: str) -> dict[str, Any]:
    response = client.get(RECOMMENDATIONS, params={"horizon": horizon, **params}, headers=DEV_AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_tier_serves_each_horizon_with_its_model(
    backend: StorageBackend, cache: SnapshotCache, make_snapshot: MakeSnapshot
) -> None:
    snapshot = make_snapshot(run_id="run-horizons")
    publish(snapshot, session_factory=backend.session_factory, cache=cache)
    state = ApiState(cache=cache, database=backend.database)
    for horizon in ("1h", "4h", "24h"):
        with running_client(_settings(backend), state=state) as client:  # a fresh app per tier: nothing memoised
            tiers = [_at_horizon(client, horizon), _at_horizon(client, horizon)]
        with running_client(_settings(backend), state=state) as client:
            tiers.append(_at_horizon(client, horizon, use_cache="false"))
        assert [body["data_source"] for body in tiers] == [cache.source_name, "memory", "database"]
        expected = sorted(snapshot.recommendations, key=lambda rec: rec.scores_by_horizon[horizon].rank)
        model = snapshot.models[horizon]
        for body in tiers:
            items = body["recommendations"]
            assert [item["symbol"] for item in items] == [rec.symbol for rec in expected]
            assert [item["total_score"] for item in items] == [rec.scores_by_horizon[horizon].score for rec in expected]
            assert items[0]["scores_by_horizon"].keys() == expected[0].scores_by_horizon.keys()
            assert body["model"]["weights"] == dict(model.weights) and body["model"]["note"] == model.note
            assert (body["horizon"], body["horizons"]) == (horizon, list(snapshot.models))
        assert tiers[0]["recommendations"] == tiers[1]["recommendations"] == tiers[2]["recommendations"]
        assert tiers[0]["model"] == tiers[2]["model"]
