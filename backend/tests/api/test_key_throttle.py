"""The failed-key throttle through running apps (SQLite + in-process counts, PostgreSQL + Redis), across two API
processes through Redis, and on the counters themselves."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from app.api.key_throttle import FailedKeyThrottle, client_address
from app.api.ratelimit import RateLimiter
from app.config import Settings
from app.storage.api_keys import ApiKeyRepository
from app.storage.publish import publish
from tests.support.api import inside_one_rate_window, running_client
from tests.support.clocks import ManualClock
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend
from tests.support.waiting import wait_for

RECOMMENDATIONS = "/api/v1/recommendations"
LIMIT = 3


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _settings(backend: StorageBackend, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": backend.url,
        "redis_url": None,
        "exchanges": ["binance"],
        "env": "production",
        "dev_key_enabled": False,
        "api_failed_keys_per_min": LIMIT,
    }
    return Settings(**{**values, **overrides})


def _create_key(backend: StorageBackend) -> dict[str, str]:
    with backend.session_factory.begin() as session:
        _, secret = ApiKeyRepository(session).create(name="user-server", rate_limit_per_min=600)
    return _bearer(secret)


@pytest.fixture
def stack(request: pytest.FixtureRequest, backend: StorageBackend, make_snapshot: MakeSnapshot) -> Settings:
    """Settings of an app on a published run: SQLite with in-process counts, PostgreSQL with Redis."""
    publish(make_snapshot(run_id="run-t"), session_factory=backend.session_factory, cache=None)
    if backend.name == "sqlite":
        return _settings(backend)
    redis_url: str = request.getfixturevalue("redis_url")
    request.getfixturevalue("redis_client")  # fails (or skips) when Redis is unreachable
    return _settings(backend, redis_url=redis_url, redis_prefix=request.getfixturevalue("redis_prefix"))


def _one_window() -> None:
    inside_one_rate_window(clock=time.monotonic)  # the in-process counts
    inside_one_rate_window(clock=time.time)  # Redis's


def test_invalid_keys_from_one_client_are_throttled_while_known_keys_keep_working(
    stack: Settings, backend: StorageBackend
) -> None:
    known, fresh = _create_key(backend), _create_key(backend)
    with running_client(stack) as client:
        _one_window()
        assert client.get(RECOMMENDATIONS, headers=known).status_code == 200
        refused = [client.get(RECOMMENDATIONS, headers=_bearer(f"dk_guess_{n}")).status_code for n in range(LIMIT)]
        throttled = client.get(RECOMMENDATIONS, headers=_bearer("dk_guess_next"))
        posted = client.post("/api/v1/bundle", json={}, headers=_bearer("dk_guess_body"))
        never_verified = client.get(RECOMMENDATIONS, headers=fresh)
        verified_before = client.get(RECOMMENDATIONS, headers=known)
        without_key = client.get(RECOMMENDATIONS)
    assert refused == [401] * LIMIT
    for response in (throttled, posted, never_verified):
        assert response.status_code == 429 and response.json()["error"]["code"] == "too_many_failed_keys"
        assert 1 <= int(response.headers["retry-after"]) <= 60
    assert f"{LIMIT} invalid API keys" in throttled.json()["error"]["message"]
    assert verified_before.status_code == 200
    assert without_key.status_code == 401  # a missing key is not a guess


@pytest.mark.redis
def test_failed_keys_are_counted_across_api_processes_through_redis(
    backend: StorageBackend, make_snapshot: MakeSnapshot, redis_client: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    publish(make_snapshot(run_id="run-t"), session_factory=backend.session_factory, cache=None)
    settings = _settings(backend, redis_url=redis_url, redis_prefix=redis_prefix)

    def shared_total() -> int:
        return sum(int(redis_client.get(key) or 0) for key in redis_client.scan_iter(f"{redis_prefix}:failedkeys:*"))

    with running_client(settings) as first, running_client(settings) as second:
        _one_window()
        on_first = [first.get(RECOMMENDATIONS, headers=_bearer(f"dk_a_{n}")).status_code for n in range(LIMIT)]
        wait_for(lambda: shared_total() >= LIMIT, timeout_s=2, what="the failures to reach Redis", poll_s=0.02)
        second_first = second.get(RECOMMENDATIONS, headers=_bearer("dk_b_0"))  # its first count of this client
        wait_for(lambda: shared_total() > LIMIT, timeout_s=2, what="the second's failure", poll_s=0.02)
        time.sleep(0.25)  # and the second learned the shared total on its next sync
        throttled = second.get(RECOMMENDATIONS, headers=_bearer("dk_b_1"))
    assert on_first == [401] * LIMIT and second_first.status_code == 401
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "too_many_failed_keys"


def test_the_throttle_counts_refusals_per_client_and_logs_once_at_the_limit() -> None:
    clock = ManualClock(now_s=600.0)  # the start of a minute
    throttle = FailedKeyThrottle(RateLimiter(clock=clock), limit_per_min=2)
    with capture_logs() as logs:
        throttle.record_failure("10.0.0.1")
        assert throttle.retry_after_s("10.0.0.1") is None
        throttle.record_failure("10.0.0.1")
        throttle.record_failure("10.0.0.1")
    assert throttle.retry_after_s("10.0.0.1") == 60 and throttle.retry_after_s("10.0.0.2") is None
    assert [(e["event"], e["client"]) for e in logs] == [("failed_keys_throttled", "10.0.0.1")]
    clock.now_s += 45
    assert throttle.retry_after_s("10.0.0.1") == 15
    clock.now_s += 15  # the next minute
    assert throttle.retry_after_s("10.0.0.1") is None
    assert client_address(("192.0.2.7", 51000)) == "192.0.2.7" and client_address(None) == "unknown"


def test_peek_counts_nothing_and_the_counts_stay_bounded() -> None:
    clock = ManualClock(now_s=600.0)
    limiter = RateLimiter(clock=clock, max_keys=4)
    assert [limiter.peek("k", limit_per_min=1) for _ in range(3)] == [None, None, None]
    assert limiter.hit("k", limit_per_min=1) is None and limiter.peek("k", limit_per_min=1) == 60
    for n in range(3):
        limiter.hit(f"old-{n}", limit_per_min=1)
    clock.now_s += 60  # a new minute: the old window's counts are dropped first, quietly
    with capture_logs() as logs:
        for n in range(5):  # the fifth finds four of this minute: the counts start over
            limiter.hit(f"new-{n}", limit_per_min=1)
    assert [e["event"] for e in logs] == ["rate_counts_reset"]
    assert limiter.peek("new-0", limit_per_min=1) is None  # forgotten in the reset
    assert limiter.peek("new-4", limit_per_min=1) == 60  # counted after it
