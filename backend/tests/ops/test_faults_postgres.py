"""Fault: PostgreSQL stops while the worker publishes every second and the API serves.

A private PostgreSQL cluster (stopped with ``pg_ctl stop -m fast``, started again with its data) and a private
Redis; ``dantaro worker`` and ``dantaro api`` as real processes with a 1 s analysis interval (stale after 2 s).
While the database is down the API keeps answering from its cache and reports ``stale`` once the run is older than
twice the interval; the worker stays up and logs its failed attempts; when the database returns the worker
publishes again and the stored hourly candles have neither gaps nor duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.api import DEV_AUTH
from tests.support.load import Reply, fetch
from tests.support.processes import ApiServer, DantaroProcess, create_api_key, dantaro_env, log_events, run_dantaro
from tests.support.queries import hourly_open_times, open_time_steps, query
from tests.support.services import PrivatePostgres, PrivateRedis, require_postgres_binaries, require_redis_server
from tests.support.waiting import wait_for

HOUR_MS = 3_600_000


def _published_runs(url: str) -> list[str]:
    rows = query(url, "SELECT run_id FROM analysis_runs WHERE published_at IS NOT NULL ORDER BY published_at")
    return [str(row[0]) for row in rows]


def _is_db_failure(event: dict[str, Any]) -> bool:
    """A warning or error log event about the unreachable database."""
    text = json.dumps(event)
    return event.get("level") in {"error", "warning"} and ("OperationalError" in text or "Connection refused" in text)


def _poll_until(client: httpx2.Client, until: Callable[[Reply], bool], *, timeout_s: float) -> list[Reply]:
    replies: list[Reply] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies.append(fetch(client, "/api/v1/recommendations"))
        if until(replies[-1]):
            return replies
        time.sleep(0.1)
    raise AssertionError(f"no reply as expected within {timeout_s} s; last: {replies[-1:]}")


@contextmanager
def _private_services() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    """A started private PostgreSQL cluster and Redis, destroyed afterwards."""
    require_postgres_binaries()
    require_redis_server()
    database, cache = PrivatePostgres(), PrivateRedis()
    try:
        database.init()
        cache.start()
        yield database, cache
    finally:
        cache.kill()
        database.destroy()


def _env(tmp_path: Path, database: PrivatePostgres, cache: PrivateRedis) -> dict[str, str]:
    return dantaro_env(
        tmp_path,
        DANTARO_DATABASE_URL=database.url,
        DANTARO_REDIS_URL=cache.url,
        DANTARO_ANALYSIS_INTERVAL_S="1",
        DANTARO_HEARTBEAT_INTERVAL_S="1",
        DANTARO_UNIVERSE_SIZE="4",
    )


def _check_outage(client: httpx2.Client, database: PrivatePostgres, worker: DantaroProcess) -> str:
    """Stop PostgreSQL: the API answers 200 from cache, stale once older than 2 s; the worker lives and logs."""
    fresh = _poll_until(client, lambda reply: reply.stale is False, timeout_s=5)[-1]
    assert fresh.run_id is not None
    database.stop(mode="fast")
    stopped_log_chars = len(worker.log_text())
    outage = _poll_until(client, lambda reply: reply.stale is True, timeout_s=8)
    assert all(reply.status == 200 for reply in outage), [r for r in outage if r.status != 200][:3]
    assert {reply.data_source for reply in outage} <= {"memory", "redis"}
    # stale is exactly "older than 2 × the 1 s interval", and the run's age keeps growing while it is served
    assert all(reply.stale == (reply.age_s is not None and reply.age_s > 2.0) for reply in outage), outage
    assert outage[-1].run_id == outage[0].run_id and outage[-1].age_s is not None and outage[-1].age_s > 2.0
    time.sleep(1.0)
    assert worker.alive, f"the worker exited while the database was down:\n{worker.log_text()[-3000:]}"
    failed = [event for event in log_events(worker.log_text()[stopped_log_chars:]) if _is_db_failure(event)]
    assert len(failed) >= 2 and any("cycle" in json.dumps(event) for event in failed), "no failed cycle attempts logged"
    return fresh.run_id


def _check_resumed(client: httpx2.Client, database: PrivatePostgres, *, fresh_run: str) -> None:
    """Start PostgreSQL again: two more runs are published and the API serves a fresh one."""
    database.start()
    resumed_at_runs = len(_published_runs(database.url))
    wait_for(
        lambda: len(_published_runs(database.url)) >= resumed_at_runs + 2,
        timeout_s=20,
        what="two runs published after the database returned",
    )
    newest = _published_runs(database.url)[-1]
    back = _poll_until(client, lambda reply: reply.run_id == newest or reply.stale is False, timeout_s=5)
    assert back[-1].status == 200 and back[-1].stale is False and back[-1].run_id != fresh_run


def _check_nothing_lost(before: dict[str, list[int]], after: dict[str, list[int]]) -> None:
    """Every symbol's hourly series kept what it had, grew past the outage, and has no gap or duplicate."""
    assert set(after) == set(before) and after
    for symbol, open_times in after.items():
        steps = open_time_steps(open_times)
        assert steps == {HOUR_MS}, f"{symbol}: open-time steps {sorted(steps)[:5]} (gap or duplicate)"
        assert open_times[-1] > before[symbol][-1], f"{symbol}: no candle collected after the outage"
        assert open_times[: len(before[symbol])] == before[symbol], f"{symbol}: candles lost"


@pytest.mark.slow
def test_postgres_stopped_serves_stale_cache_and_the_worker_resumes_losing_nothing(tmp_path: Path) -> None:
    with _private_services() as (database, cache):
        env = _env(tmp_path, database, cache)
        assert run_dantaro(["migrate", "upgrade"], env).returncode == 0
        worker = DantaroProcess(["worker"], env, log_path=tmp_path / "worker.log")
        api = ApiServer(env, log_path=tmp_path / "api.log")
        try:
            worker.start()
            api.start()
            wait_for(lambda: len(_published_runs(database.url)) >= 2, timeout_s=30, what="two published runs")
            before = hourly_open_times(database.url)
            with httpx2.Client(base_url=api.base_url, headers=DEV_AUTH, timeout=5.0) as client:
                fresh_run = _check_outage(client, database, worker)
                _check_resumed(client, database, fresh_run=fresh_run)
            _check_nothing_lost(before, hourly_open_times(database.url))
        finally:
            api.kill()
            worker.kill()


@pytest.mark.slow
def test_a_verified_key_keeps_reading_the_cache_while_postgres_is_down(tmp_path: Path) -> None:
    with _private_services() as (database, cache):
        env = _env(tmp_path, database, cache)
        assert run_dantaro(["migrate", "upgrade"], env).returncode == 0
        headers = {"Authorization": f"Bearer {create_api_key(env, name='faults')}"}
        published = run_dantaro(["worker", "--once"], env)
        assert published.returncode == 0, published.stderr[-3000:]
        api = ApiServer(env, log_path=tmp_path / "api.log").start()
        try:
            with httpx2.Client(base_url=api.base_url, headers=headers, timeout=5.0) as client:
                assert fetch(client, "/api/v1/recommendations").status == 200
                database.stop(mode="fast")
                time.sleep(1.5)  # past the key's positive cache entry
                replies = [fetch(client, "/api/v1/recommendations") for _ in range(5)]
                unknown = client.get("/api/v1/recommendations", headers={"Authorization": "Bearer dk_nope_x"})
        finally:
            api.kill()
    assert [reply.status for reply in replies] == [200] * 5, replies[0]
    assert unknown.status_code == 503  # a key never verified cannot be checked: retry later, not a 500
    assert unknown.json()["error"]["code"] == "key_store_unavailable"
    assert unknown.headers["Retry-After"] == "5"
    assert {reply.data_source for reply in replies} <= {"memory", "redis"}
