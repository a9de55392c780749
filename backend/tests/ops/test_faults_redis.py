"""Fault: Redis is killed (SIGKILL) while the API is under load, then comes back empty.

Real processes throughout: a private ``redis-server``, the worker (``dantaro worker --once``) publishing into a
SQLite file and that Redis, and ``dantaro api`` answering four client threads. Every request must succeed while
Redis dies (the API falls back to its in-process copy, then the database), and a run published after Redis returns
must be served within a few seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest
import redis

from tests.support.load import Load, Reply, fetch
from tests.support.processes import ApiServer, create_api_key, dantaro_env, run_dantaro
from tests.support.services import PrivateRedis, require_redis_server

PATHS = ["/api/v1/recommendations", "/api/v1/support-levels/BTC", "/api/v1/market-status"]


def _publish_once(env: dict[str, str]) -> None:
    result = run_dantaro(["worker", "--once"], env, timeout_s=60)
    assert result.returncode == 0, result.stderr[-3000:]


def _current_run_id(redis_url: str) -> str | None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        value = client.get("faults:current:binance")
    finally:
        client.close()
    return value.decode() if isinstance(value, bytes) else value


def _poll(client: httpx2.Client, path: str, *, until: str, timeout_s: float) -> list[Reply]:
    """Request ``path`` until a reply satisfies ``until`` (``cache_ok`` or ``run:<id>``); returns every reply."""
    replies: list[Reply] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = fetch(client, path)
        replies.append(reply)
        if until.startswith("run:") and reply.run_id == until[4:]:
            return replies
        if until == "cache_ok" and reply.cache_status == "ok":
            return replies
        time.sleep(0.05)
    raise AssertionError(f"no reply satisfied {until} within {timeout_s} s; last: {replies[-1:]}")


def _check_kill_under_load(api: ApiServer, server: PrivateRedis, *, headers: dict[str, str], run_id: str) -> None:
    """Kill Redis two seconds into a four-thread load: every reply is a fast 200 of the same run."""
    with Load(api.base_url, paths=PATHS, headers=headers, threads=4) as load:
        time.sleep(2.0)
        killed_at_s = time.monotonic()
        server.kill()
        time.sleep(4.0)
    replies = load.replies
    failures = [reply for reply in replies if reply.status != 200]
    assert not failures, f"{len(failures)} of {len(replies)} requests failed, e.g. {failures[:3]}"
    slowest = max(replies, key=lambda reply: reply.latency_s)
    assert slowest.latency_s < 1.0, f"a request took {slowest.latency_s:.2f} s while Redis died: {slowest}"
    before = {reply.data_source for reply in replies if reply.at_s < killed_at_s}
    late = [reply for reply in replies if reply.at_s > killed_at_s + 1.5]
    assert len(replies) > 100, f"the load made only {len(replies)} requests"
    assert before and before <= {"redis", "memory"}, before
    # The in-process copy is re-validated against the database's pointer (same run: reported as memory).
    assert late and {reply.data_source for reply in late} <= {"memory", "database"}
    assert "down" in {reply.cache_status for reply in late}, "market-status never reported the cache down"
    log_text = api.log_text()  # the reader or the rate limiter saw Redis fail and tripped the shared breaker
    assert '"snapshot_cache_read_failed"' in log_text or '"snapshot_cache_skipped"' in log_text
    assert {reply.run_id for reply in replies} == {run_id}


def _check_recovery(api: ApiServer, server: PrivateRedis, env: dict[str, str], *, headers: dict[str, str]) -> None:
    """Start Redis again (empty), publish a new run into it: the API serves it within seconds, cache ok."""
    server.start()
    assert _current_run_id(server.url) is None  # the killed server kept nothing
    with httpx2.Client(base_url=api.base_url, headers=headers, timeout=5.0) as client:
        old_run = _poll(client, "/api/v1/market-status", until="cache_ok", timeout_s=10)[-1].run_id
        _publish_once(env)
        new_run = _current_run_id(server.url)
        assert new_run is not None and new_run != old_run
        served = _poll(client, "/api/v1/recommendations", until=f"run:{new_run}", timeout_s=5)
        assert all(reply.status == 200 for reply in served), served
        assert served[-1].data_source in {"redis", "memory"}, served[-1]
        health = client.get("/api/v1/market-status").json()["system_health"]
        assert health["cache_status"] == "ok", health


@pytest.mark.slow
def test_redis_killed_under_load_costs_no_request_and_recovers(tmp_path: Path) -> None:
    require_redis_server()
    server = PrivateRedis()
    server.start()
    env = dantaro_env(
        tmp_path,
        DANTARO_REDIS_URL=server.url,
        DANTARO_REDIS_PREFIX="faults",
        DANTARO_REDIS_RETRY_AFTER_S="1",
        DANTARO_UNIVERSE_SIZE="6",
    )
    api = ApiServer(env, log_path=tmp_path / "api.log")
    try:
        assert run_dantaro(["migrate", "upgrade"], env).returncode == 0
        _publish_once(env)
        first_run = _current_run_id(server.url)
        assert first_run is not None, "the worker did not publish into the private Redis"
        headers = {"Authorization": f"Bearer {create_api_key(env, name='faults')}"}
        api.start()
        _check_kill_under_load(api, server, headers=headers, run_id=first_run)
        _check_recovery(api, server, env, headers=headers)
    finally:
        api.kill()
        server.kill()
