"""The live stream's parts in one process: the published-run feed, cursors and resume plans (SQLite and
PostgreSQL), the hub's delivery by notification and by polling, the per-key slots (in-process and Redis leases), and
the errors a stream request gets before it starts. Two real API processes, Redis and the embedded stack streaming
over HTTP are ``tests/integrations/test_stream_processes.py``."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.routes.stream import plan_resume
from app.api.run_stream import (
    QUEUE_LIMIT,
    Cursor,
    CursorError,
    RunHub,
    StreamClosedError,
    Subscription,
    parse_cursor,
)
from app.api.stream_slots import LocalStreamSlots, RedisStreamSlots
from app.domain import Snapshot, utc_now
from app.storage.cache import MemoryCache
from app.storage.db import sql_connection
from app.storage.publish import publish
from app.storage.queries.run_feed import PublishedRun, RunFeedRepository
from app.storage.redis_client import RedisClient
from tests.support.api import DEV_AUTH
from tests.support.breakers import RecordingBreaker
from tests.support.clocks import ManualClock
from tests.support.network import free_port
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend

STREAM = "/api/v1/stream"


def _publish_runs(backend: StorageBackend, make_snapshot: MakeSnapshot, *names: str, exchange: str = "binance") -> None:
    for name in names:
        publish(make_snapshot(run_id=name, exchange=exchange), session_factory=backend.session_factory, cache=None)


def test_cursor_text_round_trips_and_foreign_ids_are_refused() -> None:
    now = utc_now()
    run = PublishedRun(run_id="0a" * 16, exchange="binance", as_of=now, published_at=now)
    cursor = Cursor({"upbit": None, "binance": run})
    assert cursor.text() == f"binance:{run.run_id},upbit:"
    assert parse_cursor(cursor.text()) == {"binance": run.run_id, "upbit": ""}
    older = dataclasses.replace(run, run_id="09" * 16, published_at=now - timedelta(seconds=1))
    assert not cursor.advance(older) and not cursor.advance(run)  # at or before the position: dropped
    assert not cursor.advance(dataclasses.replace(run, exchange="okx", published_at=now + timedelta(seconds=1)))
    for bad in ("", "binance", "binance:a/b", "Binance:0a", "binance:0a;drop", "a:" + "0" * 65, "x:," * 700):
        with pytest.raises(CursorError):
            parse_cursor(bad)


def test_the_feed_lists_published_runs_per_exchange_in_publish_order(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    _publish_runs(backend, make_snapshot, "a1", "a2", "a3")
    _publish_runs(backend, make_snapshot, "u1", exchange="upbit")
    with backend.session_factory() as session:
        feed = RunFeedRepository(sql_connection(session))
        latest = feed.latest(exchange="binance")
        assert latest is not None and latest.run_id == "a3"
        assert [run.run_id for run in feed.newest(exchange="binance", limit=2)] == ["a2", "a3"]
        first = feed.get(run_id="a1")
        assert first is not None and [run.run_id for run in feed.after(first, limit=10)] == ["a2", "a3"]
        assert feed.get(run_id="nope") is None and feed.latest(exchange="okx") is None
        assert first.as_of == make_snapshot(run_id="x").data_as_of


@pytest.mark.parametrize(
    ("wanted", "limit", "replayed", "missed"),
    [
        ({"binance": "a2"}, 10, ["a3", "a4", "a5"], False),
        ({"binance": "a2"}, 2, ["a4", "a5"], True),  # more runs than the window: the newest, and missed
        ({"binance": ""}, 10, ["a1", "a2", "a3", "a4", "a5"], False),  # the client had seen none yet
        ({"binance": "ffff"}, 10, [], True),  # gone (retention) or never ours
        ({"binance": "u1"}, 10, [], True),  # another exchange's run
        ({"upbit": "u1"}, 10, [], False),  # an exchange this stream does not follow
        (None, 10, [], False),  # no Last-Event-ID
    ],
)
def test_resume_replays_the_runs_after_the_last_event_id(  # noqa: PLR0917 (the parametrized cases)
    backend: StorageBackend,
    make_snapshot: MakeSnapshot,
    wanted: dict[str, str] | None,
    limit: int,
    replayed: list[str],
    missed: bool,
) -> None:
    _publish_runs(backend, make_snapshot, "a1", "a2", "a3", "a4", "a5")
    _publish_runs(backend, make_snapshot, "u1", exchange="upbit")
    hub = RunHub(database=backend.database, exchanges=["binance", "upbit"], poll_interval_s=60)

    async def plan() -> tuple[list[str], bool, str]:
        subscription = await hub.subscribe(["binance"])
        resume = await hub.read(lambda feed: plan_resume(feed, subscription, wanted, limit=limit))
        for run in resume.replay:
            resume.cursor.advance(run)
        return [run.run_id for run in resume.replay], resume.missed, resume.cursor.text()

    runs, was_missed, text = asyncio.run(plan())
    assert (runs, was_missed) == (replayed, missed)
    assert text == "binance:a5"  # after the replay the stream stands at the newest run either way


async def _next(queue: asyncio.Queue[PublishedRun | None], *, timeout_s: float) -> PublishedRun | None:
    return await asyncio.wait_for(queue.get(), timeout_s)


async def test_the_hub_delivers_a_notified_run_at_once_and_a_silent_one_by_polling(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    _publish_runs(backend, make_snapshot, "a1")
    cache = MemoryCache()
    woken = RunHub(database=backend.database, exchanges=["binance"], poll_interval_s=3600)
    polling = RunHub(database=backend.database, exchanges=["binance"], poll_interval_s=0.1)
    cache.subscribe(woken.notify)
    for hub in (woken, polling):
        hub.start()
    try:
        first, second = await woken.subscribe(["binance"]), await polling.subscribe(["binance"])
        assert first.start["binance"] is not None and first.start["binance"].run_id == "a1"
        run = make_snapshot(run_id="a2")
        await asyncio.to_thread(publish, run, session_factory=backend.session_factory, cache=cache)
        assert (await _next(first.queue, timeout_s=1.0)).run_id == "a2"  # type: ignore[union-attr]
        assert (await _next(second.queue, timeout_s=1.0)).run_id == "a2"  # type: ignore[union-attr]
        _publish_runs(backend, make_snapshot, "a3")  # no cache: no notification, only the poll finds it
        assert (await _next(second.queue, timeout_s=1.0)).run_id == "a3"  # type: ignore[union-attr]
        with pytest.raises(TimeoutError):
            await _next(first.queue, timeout_s=0.5)
    finally:
        for hub in (woken, polling):
            await hub.stop()
    assert await _next(first.queue, timeout_s=0.1) is None  # closing ends every stream
    with pytest.raises(StreamClosedError):
        await woken.subscribe(["binance"])


def test_local_slots_count_open_streams_per_key() -> None:
    slots = LocalStreamSlots()
    tokens = [slots.acquire("k1", limit=2), slots.acquire("k1", limit=2)]
    assert all(tokens) and slots.acquire("k1", limit=2) is None
    assert slots.acquire("k2", limit=2) is not None
    slots.release("k1", str(tokens[0]))
    assert slots.acquire("k1", limit=2) is not None


@pytest.mark.redis
def test_redis_slots_are_shared_by_processes_and_expire_with_a_killed_one(
    redis_client: redis.Redis, resp_client: RedisClient, redis_prefix: str
) -> None:
    clock = ManualClock(now_s=1_000_000.0)

    def process() -> RedisStreamSlots:
        return RedisStreamSlots(
            resp_client,
            prefix=redis_prefix,
            lease_s=45,
            breaker=RecordingBreaker(),
            fallback=LocalStreamSlots(),
            clock_s=clock,
        )

    first, second = process(), process()
    held = first.acquire("k1", limit=2)
    assert held and second.acquire("k1", limit=2) and second.acquire("k1", limit=2) is None
    clock.now_s += 30
    first.renew("k1", held)  # the first process's stream stays open; the second one's died silently
    clock.now_s += 30
    assert second.acquire("k1", limit=2) is not None and second.acquire("k1", limit=2) is None
    first.release("k1", held)
    assert first.acquire("k1", limit=2) is not None
    assert redis_client.ttl(first.key("k1")) > 0  # the set expires with its leases


def test_a_dead_redis_falls_back_to_this_process_and_trips_the_breaker() -> None:
    dead = RedisClient.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    breaker, local = RecordingBreaker(), LocalStreamSlots()
    slots = RedisStreamSlots(dead, prefix="dantaro-test", lease_s=45, breaker=breaker, fallback=local)
    token = slots.acquire("k1", limit=1)
    assert token is not None and token.startswith("local:") and breaker.reasons
    assert slots.acquire("k1", limit=1) is None  # counted in this process now
    slots.release("k1", token)
    assert local.acquire("k1", limit=1) is not None
    dead.close()


def test_a_stream_request_fails_before_streaming_with_the_usual_errors(client: TestClient, snapshot: Snapshot) -> None:
    missing = client.get(STREAM)
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/json"
    bad = client.get(STREAM, headers={**DEV_AUTH, "Last-Event-ID": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_last_event_id"
    unknown = client.get(STREAM, params={"exchange": "kraken"}, headers=DEV_AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_exchange"


def test_a_stream_that_falls_a_queue_behind_is_ended_to_resume() -> None:
    now = utc_now()
    subscription = Subscription(frozenset({"binance"}), {"binance": None})
    for n in range(QUEUE_LIMIT + 1):
        subscription.offer(PublishedRun(run_id=f"r{n}", exchange="binance", as_of=now, published_at=now))
    subscription.offer(PublishedRun(run_id="other", exchange="upbit", as_of=now, published_at=now))  # not followed
    items = [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]
    assert subscription.overflowed and len(items) == QUEUE_LIMIT and items[-1] is None
    assert all(item is not None and item.exchange == "binance" for item in items[:-1])
