"""API keys through running apps: shared rate limits (Redis and in-process), revocation across processes, and
``last_used_at`` written in batches instead of per request. SQLite/PostgreSQL, with and without Redis."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import redis

from app.api.auth import UsageRecorder
from app.api.ratelimit import RateLimiter, RedisRateLimiter
from app.config import Settings
from app.storage.api_keys import ApiKeyRepository, ApiKeyRow
from app.storage.publish import publish
from app.storage.redis_client import RedisClient
from tests.support.api import inside_one_rate_window, running_client
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend

RECOMMENDATIONS = "/api/v1/recommendations"


def _settings(backend: StorageBackend, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": backend.url,
        "redis_url": None,
        "exchanges": ["binance"],
        "env": "production",
        "dev_key_enabled": False,
        "docs_enabled": True,
    }
    return Settings(**{**values, **overrides})


def _create_key(backend: StorageBackend, *, rate_limit_per_min: int = 600) -> tuple[str, dict[str, str]]:
    with backend.session_factory.begin() as session:
        key_id, secret = ApiKeyRepository(session).create(name="user-server", rate_limit_per_min=rate_limit_per_min)
    return key_id, {"Authorization": f"Bearer {secret}"}


def _row(backend: StorageBackend, key_id: str) -> ApiKeyRow:
    with backend.session_factory() as session:
        (row,) = [row for row in ApiKeyRepository(session).list() if row.key_id == key_id]
    return row


@pytest.fixture
def published(backend: StorageBackend, make_snapshot: MakeSnapshot) -> StorageBackend:
    publish(make_snapshot(run_id="run-k"), session_factory=backend.session_factory, cache=None)
    return backend


@pytest.mark.redis
def test_the_rate_limit_is_shared_by_api_processes_through_redis(
    published: StorageBackend, redis_client: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    key_id, auth = _create_key(published, rate_limit_per_min=3)
    settings = _settings(published, redis_url=redis_url, redis_prefix=redis_prefix)

    def shared_total() -> int:
        return sum(int(redis_client.get(key) or 0) for key in redis_client.scan_iter(f"{redis_prefix}:ratelimit:*"))

    with running_client(settings) as first, running_client(settings) as second:
        statuses = [client.get(RECOMMENDATIONS, headers=auth).status_code for client in (first, second, first)]
        deadline = time.monotonic() + 2
        while shared_total() < 3:  # both processes sent their hits (every 0.1 s)
            assert time.monotonic() < deadline, "hits never reached Redis"
            time.sleep(0.02)
        time.sleep(0.25)  # and each learned the shared total on its next sync
        limited = second.get(RECOMMENDATIONS, headers=auth)
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["code"] == "rate_limited"
    assert list(redis_client.scan_iter(match=f"{redis_prefix}:ratelimit:{key_id}:*"))


def test_without_redis_each_process_counts_in_process(published: StorageBackend) -> None:
    _, auth = _create_key(published, rate_limit_per_min=2)
    with running_client(_settings(published)) as client:
        inside_one_rate_window()
        statuses = [client.get(RECOMMENDATIONS, headers=auth).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


class TrippedOnce:
    """A ``Breaker`` that skips Redis for good once tripped (the app's breaker, the snapshot reader, times out)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def cache_usable(self) -> bool:
        """True until the first trip."""
        return not self.reasons

    def trip_cache(self, reason: str) -> None:
        """Record a failure."""
        self.reasons.append(reason)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_failing_redis_falls_back_to_in_process_counting_and_never_fails() -> None:
    client = RedisClient.from_url(f"redis://127.0.0.1:{_unused_port()}/0", timeout_s=0.2)
    breaker = TrippedOnce()
    limiter = RedisRateLimiter(client, prefix="dantaro_dead", fallback=RateLimiter(), breaker=breaker)
    try:
        assert limiter.hit("k1", limit_per_min=2) is None
        limiter.sync()  # fails: trips the breaker, never raises
        answers = [limiter.hit("k1", limit_per_min=2) for _ in range(3)]
    finally:
        client.close()
    assert not breaker.cache_usable() and breaker.reasons[0].startswith("rate limiter: redis ")
    assert answers[:2] == [None, None] and answers[2] is not None and answers[2] >= 1  # counted in-process


@pytest.mark.redis
def test_redis_limiter_windows_and_retry_after(
    redis_client: redis.Redis, resp_client: RedisClient, redis_prefix: str
) -> None:
    now_s = [1_699_999_990.0]  # 10 s into a minute
    limiter = RedisRateLimiter(
        resp_client,
        prefix=redis_prefix,
        fallback=RateLimiter(),
        breaker=TrippedOnce(),
        clock=lambda: now_s[0],
    )
    window = int(now_s[0] // 60)
    redis_client.set(limiter.counter_key("k", window), 1)  # another process already used one request
    assert limiter.hit("k", limit_per_min=3) is None
    limiter.sync()
    assert int(redis_client.get(limiter.counter_key("k", window)) or 0) == 2
    assert limiter.hit("k", limit_per_min=3) is None
    assert limiter.hit("k", limit_per_min=3) == 50  # 2 known in Redis + 1 pending
    assert limiter.hit("other", limit_per_min=3) is None
    limiter.sync()
    assert int(redis_client.get(limiter.counter_key("k", window)) or 0) == 3
    now_s[0] += 50  # the next minute
    assert limiter.hit("k", limit_per_min=3) is None
    limiter.sync()
    ttl_s = redis_client.ttl(limiter.counter_key("k", window + 1))
    assert 0 < int(ttl_s) <= 120


def test_revocation_reaches_two_api_processes_within_a_second(published: StorageBackend) -> None:
    key_id, auth = _create_key(published)
    with running_client(_settings(published)) as first, running_client(_settings(published)) as second:
        assert first.get(RECOMMENDATIONS, headers=auth).status_code == 200
        assert second.get(RECOMMENDATIONS, headers=auth).status_code == 200
        with published.session_factory.begin() as session:
            assert ApiKeyRepository(session).revoke(key_id)
        revoked_at = time.monotonic()
        while {
            first.get(RECOMMENDATIONS, headers=auth).status_code,
            second.get(RECOMMENDATIONS, headers=auth).status_code,
        } != {401}:
            assert time.monotonic() - revoked_at < 1.5, "revocation did not reach both processes"
            time.sleep(0.05)
        refused = first.get(RECOMMENDATIONS, headers=auth)
    assert time.monotonic() - revoked_at < 1.5
    assert refused.headers["www-authenticate"] == "Bearer"


def test_last_used_is_written_in_batches_not_per_request(published: StorageBackend) -> None:
    key_id, auth = _create_key(published)
    with running_client(_settings(published, api_keys_flush_interval_s=3600)) as client:
        for _ in range(5):
            assert client.get(RECOMMENDATIONS, headers=auth).status_code == 200
        assert _row(published, key_id).last_used_at is None  # nothing written yet
    assert _row(published, key_id).last_used_at is not None  # flushed at shutdown


def test_last_used_is_flushed_periodically(published: StorageBackend) -> None:
    key_id, auth = _create_key(published)
    with running_client(_settings(published, api_keys_flush_interval_s=0.1)) as client:
        assert client.get(RECOMMENDATIONS, headers=auth).status_code == 200
        deadline = time.monotonic() + 3
        while _row(published, key_id).last_used_at is None:
            assert time.monotonic() < deadline, "no periodic flush"
            time.sleep(0.05)


def test_usage_recorder_moves_last_used_forward_in_one_batch(published: StorageBackend) -> None:
    first_id, _ = _create_key(published)
    second_id, _ = _create_key(published)
    now_s = [1_700_000_000.0]
    recorder = UsageRecorder(published.database, clock=lambda: now_s[0])
    recorder.record(first_id)
    now_s[0] += 10
    recorder.record(second_id)
    recorder.record(first_id)
    assert recorder.flush() == 2 and recorder.flush() == 0
    first, second = _row(published, first_id), _row(published, second_id)
    assert first.last_used_at is not None and first.last_used_at.timestamp() == pytest.approx(now_s[0])
    assert second.last_used_at == first.last_used_at
