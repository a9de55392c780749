"""publish() and SnapshotReader over every backend and cache: tiers, whole runs only, failing Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, cast

import orjson
import pytest
import redis
from structlog.testing import capture_logs

from app.storage.cache import PAYLOAD_GRACE_S, MemoryCache, RedisCache, SnapshotCache
from app.storage.publish import publish
from app.storage.reader import SnapshotReader
from app.storage.redis_client import RedisClient
from app.storage.runs import RunRepository
from app.storage.sql import Database, DatabaseError, SqlConnection
from tests.support.clocks import ManualClock
from tests.support.network import free_port
from tests.support.snapshots import SNAPSHOT_AS_OF_MS, MakeSnapshot
from tests.support.storage import StorageBackend

HOUR_MS = 3_600_000


def _reader(backend: StorageBackend, cache: SnapshotCache | None, clock: ManualClock, **kwargs: Any) -> SnapshotReader:
    return SnapshotReader(database=backend.database, cache=cache, clock_s=clock, **kwargs)


def test_reader_serves_memory_cache_and_database_tiers(
    backend: StorageBackend, cache: SnapshotCache, make_snapshot: MakeSnapshot
) -> None:
    clock = ManualClock()
    reader = _reader(backend, cache, clock, memory_check_interval_s=1.0)
    assert reader.get("binance") is None
    first = make_snapshot(run_id="run-1")
    publish(first, session_factory=backend.session_factory, cache=cache)
    assert reader.get("binance") == (first, cache.source_name)
    assert reader.get("binance") == (first, "memory")
    clock.now_s += 5  # re-validated against the pointer: same run, still the in-process copy
    assert reader.get("binance") == (first, "memory")
    assert reader.get("binance", use_cache=False) == (first, "database")

    second = make_snapshot(run_id="run-2", as_of_ms=SNAPSHOT_AS_OF_MS + HOUR_MS)
    publish(second, session_factory=backend.session_factory, cache=cache)
    assert reader.get("binance") == (first, "memory")  # within the check interval
    clock.now_s += 1.0
    assert reader.get("binance") == (second, cache.source_name)
    assert reader.get("upbit") is None


def test_publish_commits_the_run_with_its_outcome(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(run_id="run-p")
    publish(snapshot, session_factory=backend.session_factory, cache=None)
    reader = _reader(backend, None, ManualClock())
    assert reader.get("binance") == (snapshot, "database")
    assert reader.get("binance") == (snapshot, "memory")
    with backend.session_factory() as session:
        assert RunRepository(session).latest_run_id(exchange="binance") == "run-p"


def test_an_uncommitted_run_is_invisible(backend: StorageBackend, make_snapshot: MakeSnapshot) -> None:
    first = make_snapshot(run_id="run-1")
    publish(first, session_factory=backend.session_factory, cache=None)
    reader = _reader(backend, None, ManualClock(), memory_check_interval_s=0.0)
    with backend.session_factory() as writer:
        RunRepository(writer).save_snapshot(make_snapshot(run_id="run-2", as_of_ms=SNAPSHOT_AS_OF_MS + HOUR_MS))
        assert reader.get("binance", use_cache=False) == (first, "database")
        writer.rollback()


def test_readers_never_see_a_pointer_without_its_payload(cache: SnapshotCache, make_snapshot: MakeSnapshot) -> None:
    base = make_snapshot(run_id="run-0")
    cache.put(base)
    stop = threading.Event()
    problems: list[str] = []

    def read() -> None:
        while not stop.is_set():
            run_id = cache.current_run_id("binance")
            found = None if run_id is None else cache.get("binance", run_id)
            if found is None or found.run_id != run_id:
                problems.append(f"pointer {run_id} without its payload")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for number in range(1, 150):
            cache.put(replace(base, run_id=f"run-{number}"))
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert problems == []
    assert cache.current_run_id("binance") == "run-149"


@pytest.fixture
def dead_redis_cache() -> Iterator[RedisCache]:
    client = RedisClient.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    yield RedisCache(client, prefix="dantaro_dead", ttl_s=60)
    client.close()


def test_failing_redis_falls_back_to_the_database(
    backend: StorageBackend, dead_redis_cache: RedisCache, make_snapshot: MakeSnapshot
) -> None:
    snapshot = make_snapshot(run_id="run-d")
    publish(snapshot, session_factory=backend.session_factory, cache=dead_redis_cache)  # logged, not raised
    clock = ManualClock()
    reader = _reader(backend, dead_redis_cache, clock, memory_check_interval_s=0.0)
    assert reader.get("binance") == (snapshot, "database")
    clock.now_s += 1
    assert reader.get("binance") == (snapshot, "memory")  # re-validated against the database's pointer


def test_memory_cache_notifies_after_the_flip(make_snapshot: MakeSnapshot) -> None:
    cache = MemoryCache()
    seen: list[tuple[str, str, str | None]] = []
    cache.subscribe(lambda exchange, run_id: seen.append((exchange, run_id, cache.current_run_id(exchange))))
    cache.put(make_snapshot(run_id="run-n"))
    assert seen == [("binance", "run-n", "run-n")]


@pytest.mark.redis
@pytest.mark.parametrize("client", ["resp_client", "worker_redis"])
def test_redis_publishes_the_new_run_and_outlives_pointers_with_payloads(
    client: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    make_snapshot: MakeSnapshot,
    request: pytest.FixtureRequest,
) -> None:
    cache = RedisCache(request.getfixturevalue(client), prefix=redis_prefix, ttl_s=120)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(cache.channel)
    try:
        assert pubsub.get_message(timeout=2.0) is not None  # the subscribe confirmation
        cache.put(make_snapshot(run_id="run-r"))
        message = pubsub.get_message(timeout=2.0)
    finally:
        pubsub.close()
    assert message is not None and orjson.loads(message["data"]) == {"exchange": "binance", "run_id": "run-r"}
    assert redis_client.get(cache.pointer_key("binance")) == b"run-r"
    pointer_ttl_ms = redis_client.pttl(cache.pointer_key("binance"))
    payload_ttl_ms = redis_client.pttl(cache.payload_key("binance", "run-r"))
    assert 0 < pointer_ttl_ms <= 120_000 < payload_ttl_ms


@pytest.mark.redis
def test_a_corrupt_redis_payload_falls_back_to_the_database(
    backend: StorageBackend,
    redis_client: redis.Redis,
    resp_client: RedisClient,
    redis_prefix: str,
    make_snapshot: MakeSnapshot,
) -> None:
    cache = RedisCache(resp_client, prefix=redis_prefix, ttl_s=120)
    snapshot = make_snapshot(run_id="run-c")
    publish(snapshot, session_factory=backend.session_factory, cache=cache)
    redis_client.set(cache.payload_key("binance", "run-c"), b"\x80\x04not json")
    reader = _reader(backend, cache, ManualClock())
    assert reader.get("binance") == (snapshot, "database")


def test_memory_cache_drops_replaced_runs_after_the_grace_period(make_snapshot: MakeSnapshot) -> None:
    clock = ManualClock()
    cache = MemoryCache(clock_s=clock)
    first, second = make_snapshot(run_id="run-1"), make_snapshot(run_id="run-2")
    cache.put(first)
    cache.put(second)
    assert cache.get("binance", "run-1") == first  # a reader holding the old pointer can still read it
    clock.now_s += PAYLOAD_GRACE_S + 1
    cache.put(make_snapshot(run_id="run-3"))
    assert cache.get("binance", "run-1") is None
    assert cache.get("binance", "run-2") == second


def test_an_overdue_copy_is_served_while_one_refresh_rechecks_it(
    backend: StorageBackend, cache: SnapshotCache, make_snapshot: MakeSnapshot
) -> None:
    clock = ManualClock()
    spawned: list[Callable[[], None]] = []
    reader = _reader(backend, cache, clock, memory_check_interval_s=1.0, spawn=spawned.append)
    first = make_snapshot(run_id="run-1")
    publish(first, session_factory=backend.session_factory, cache=cache)
    assert reader.serve_stale("binance") is None and not spawned  # nothing loaded yet: the caller must read
    reader.get("binance")
    second = make_snapshot(run_id="run-2", as_of_ms=SNAPSHOT_AS_OF_MS + HOUR_MS)
    publish(second, session_factory=backend.session_factory, cache=cache)
    clock.now_s += 1.5
    assert reader.peek("binance") is None  # the check is overdue
    assert reader.serve_stale("binance") == (first, "memory")  # but the copy is served meanwhile
    assert reader.serve_stale("binance") == (first, "memory")
    assert len(spawned) == 1  # single flight: one re-check for both requests
    spawned.pop()()
    assert reader.peek("binance") == (second, "memory")
    clock.now_s += 1.5
    assert reader.serve_stale("binance") == (second, "memory") and len(spawned) == 1  # released after the refresh


def test_a_failing_refresh_is_logged_and_the_copy_still_served(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    clock, down = ManualClock(), threading.Event()
    spawned: list[Callable[[], None]] = []

    class Refusing:
        def read(self, call: Callable[[SqlConnection], Any]) -> Any:
            if down.is_set():
                raise DatabaseError("cannot connect: connection refused")
            return backend.database.read(call)

    reader = SnapshotReader(database=cast(Database, Refusing()), cache=None, clock_s=clock, spawn=spawned.append)
    first = make_snapshot(run_id="run-1")
    publish(first, session_factory=backend.session_factory, cache=None)
    assert reader.get("binance") == (first, "database")
    down.set()
    clock.now_s += 1.5
    assert reader.serve_stale("binance") == (first, "memory")
    with capture_logs() as logs:
        spawned.pop()()  # never raises
    assert [(e["event"], e["exchange"], e["error_type"]) for e in logs] == [
        ("snapshot_refresh_failed", "binance", "DatabaseError")
    ]
    assert reader.serve_stale("binance") == (first, "memory") and len(spawned) == 1  # the next request retries
