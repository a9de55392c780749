"""``GET /api/v1/stream`` over real HTTP: two ``dantaro api`` processes on PostgreSQL and a real Redis, and the
embedded stack (``dantaro run``: SQLite, in-process cache, the worker publishing).

The processes poll the database only every hour here, so a run reaching a stream within a second came through the
publish notification (Redis pub/sub across processes, the in-process cache's callback in ``dantaro run``).
"""

from __future__ import annotations

import queue
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from app.storage import migrate
from app.storage.cache import RedisCache
from app.storage.db import make_engine, make_session_factory
from app.storage.publish import publish
from app.storage.redis_py import RedisPyClient
from tests.support.api import DEV_AUTH
from tests.support.candles import copy_replay_pairs
from tests.support.processes import ApiServer, dantaro_env, log_events
from tests.support.snapshots import MakeSnapshot
from tests.support.sse import SseEvent, SseReader
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

STREAM = "/api/v1/stream"
START_TIMEOUT_S = 90  # a loaded 2-core machine can take tens of seconds to start an API process
LATENCY_BOUND_S = 1.0  # the promise: a run reaches every open stream within a second of its publish (commit + notify)
QUIET = {"DANTARO_STREAM_HEARTBEAT_S": "1", "DANTARO_STREAM_POLL_INTERVAL_S": "3600"}


def _stream(api: ApiServer, *, last_event_id: str | None = None) -> SseReader:
    headers = dict(DEV_AUTH) if last_event_id is None else {**DEV_AUTH, "Last-Event-ID": last_event_id}
    return SseReader(f"{api.base_url}{STREAM}", headers=headers)


def _run_events(reader: SseReader, count: int, *, timeout_s: float = 10) -> list[SseEvent]:
    return [reader.next_event("run", timeout_s=timeout_s) for _ in range(count)]


def _refused(api: ApiServer) -> str:
    reader = _stream(api).start()
    reader.close()
    assert reader.status == 429, (reader.status, reader.body)
    return reader.body


@pytest.mark.postgres
@pytest.mark.redis
def test_two_api_processes_stream_every_run_within_a_second_and_resume_after_a_reconnect(  # noqa: PLR0917
    tmp_path: Path,
    postgres_database_factory: object,
    redis_client: redis.Redis,
    worker_redis: RedisPyClient,
    redis_url: str,
    redis_prefix: str,
    make_snapshot: MakeSnapshot,
) -> None:
    url = postgres_database_factory()  # type: ignore[operator]
    migrate.upgrade(url)
    engine = make_engine(url)
    cache = RedisCache(worker_redis, prefix=redis_prefix, ttl_s=300)

    def worker_publishes(run_id: str) -> float:
        """Publish a run as the worker does; the monotonic time its publish (commit, then notification) returned."""
        run = make_snapshot(run_id=run_id)
        publish(run, session_factory=make_session_factory(engine), cache=cache)
        return time.monotonic()

    worker_publishes("r0")
    env = dantaro_env(
        tmp_path,
        DANTARO_DATABASE_URL=url,
        DANTARO_REDIS_URL=redis_url,
        DANTARO_REDIS_PREFIX=redis_prefix,
        DANTARO_EXCHANGES="binance",
        DANTARO_STREAM_MAX_PER_KEY="2",
        **QUIET,
    )
    first, second = (ApiServer(env, log_path=tmp_path / f"api-{n}.log") for n in "ab")
    try:
        for api in (first, second):
            api.start(timeout_s=START_TIMEOUT_S)
        wait_for(lambda: redis_client.pubsub_numsub(cache.channel)[0][1] >= 2, timeout_s=10, what="both subscribed")
        resume_from = _live_on_both(first, second, worker_publishes)
        for run_id in ("r4", "r5"):  # while nobody listens
            worker_publishes(run_id)
        _resume_on_the_other(second, resume_from, worker_publishes)
    finally:
        first.kill()
        second.kill()
        engine.dispose()


def _live_on_both(first: ApiServer, second: ApiServer, worker_publishes: object) -> str:
    """Streams on both processes get r1..r3 within a second each; a third stream of the key is refused on either.
    Returns the id of r1's event on the first process."""
    with _stream(first) as on_first, _stream(second) as on_second:
        for reader in (on_first, on_second):
            ready = reader.next_event("ready", timeout_s=10)
            assert ready.json() == {"exchanges": ["binance"], "heartbeat_s": 1.0, "replayed": 0, "missed": False}
            assert ready.id == "binance:r0" and ready.retry_ms == 3000
        assert "too_many_streams" in _refused(first) and "too_many_streams" in _refused(second)  # 2 per key, total
        ids = []
        for run_id in ("r1", "r2", "r3"):
            published_s = worker_publishes(run_id)  # type: ignore[operator]
            events = [reader.next_event("run", timeout_s=10) for reader in (on_first, on_second)]
            for event in events:
                assert event.json()["run_id"] == run_id and event.id == f"binance:{run_id}"
                assert event.at_s - published_s < LATENCY_BOUND_S, f"{run_id} took {event.at_s - published_s:.3f} s"
            ids.append(events[0].id)
        body = events[0].json()
        assert body["exchange"] == "binance" and datetime.fromisoformat(body["as_of"]).tzinfo is not None
        heartbeat = on_second.next(timeout_s=3)
        assert heartbeat.comment == "heartbeat", heartbeat
    assert ids[0] is not None
    return ids[0]


def _resume_on_the_other(api: ApiServer, last_event_id: str, worker_publishes: object) -> None:
    """Reconnecting with r1's id replays r2..r5 in order, then streams live again."""

    def opened() -> bool:  # the closed streams' slots are freed once their processes see the disconnect
        reader = _stream(api, last_event_id=last_event_id).start()
        opened.reader = reader  # type: ignore[attr-defined]
        if reader.status != 200:
            reader.close()
        return reader.status == 200

    wait_for(opened, timeout_s=10, what="a free stream slot")
    reader: SseReader = opened.reader  # type: ignore[attr-defined]
    try:
        ready = reader.next_event("ready", timeout_s=10)
        assert ready.json()["replayed"] == 4 and ready.json()["missed"] is False and ready.id == "binance:r1"
        assert [event.json()["run_id"] for event in _run_events(reader, 4)] == ["r2", "r3", "r4", "r5"]
        published_s = worker_publishes("r6")  # type: ignore[operator]
        live = reader.next_event("run", timeout_s=10)
        assert live.id == "binance:r6" and live.at_s - published_s < LATENCY_BOUND_S
    finally:
        reader.close()


def test_the_embedded_stack_streams_the_worker_s_runs_and_shuts_down_with_a_stream_open(tmp_path: Path) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", ["BTC", "ETH", "SOL", "ADA"])  # a small universe starts fast
    env = dantaro_env(tmp_path, DANTARO_REPLAY_DATA_DIR=str(replay), DANTARO_ANALYSIS_INTERVAL_S="2", **QUIET)
    server = ApiServer(env, log_path=tmp_path / "run.log", command="run")
    try:
        server.start(timeout_s=START_TIMEOUT_S)
        reader = _stream(server).start()
        reader.next_event("ready", timeout_s=10)
        events = _run_events(reader, 2, timeout_s=30)
        announced = _announced_at(server, [event.json()["run_id"] for event in events])
        for event in events:  # the worker's own publishes, announced by the in-process cache
            delay_s = (event.received_at - announced[event.json()["run_id"]]).total_seconds()
            assert delay_s < LATENCY_BOUND_S, f"{event.id} arrived {delay_s:.3f} s after its publish"
        assert events[0].id != events[1].id
        stopping_s = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert reader.ended.wait(30), "the open stream kept the server from shutting down"
        ended_s = time.monotonic() - stopping_s
        last = _drain(reader)
        assert last is not None and last.comment is not None and "shutting down" in last.comment
        # uvicorn re-raises the captured SIGTERM once its graceful shutdown is complete
        assert server.process.wait(timeout=60) in {0, -signal.SIGTERM}
        assert "Application shutdown complete." in {event["event"] for event in log_events(server.log_text())}
        assert ended_s < 10, f"the stream ended {ended_s:.1f} s after SIGTERM"
        reader.close()
    finally:
        server.kill()


def _announced_at(server: ApiServer, run_ids: list[str]) -> dict[str, datetime]:
    """When each of ``run_ids``' publish put it in the cache, which announces it (the worker's ``snapshot_cached``
    event, logged just after the announcement: a stream event can arrive before it is written)."""
    found: dict[str, datetime] = {}

    def logged() -> bool:
        events = log_events(server.log_text())
        cached = (event for event in events if event["event"] == "snapshot_cached")
        found.update({event["run_id"]: datetime.fromisoformat(event["timestamp"]) for event in cached})
        return set(run_ids) <= found.keys()

    wait_for(logged, timeout_s=10, what="the snapshot_cached events of the streamed runs")
    return found


def _drain(reader: SseReader) -> SseEvent | None:
    last = None
    while True:
        try:
            last = reader.next(timeout_s=0.1)
        except queue.Empty:
            return last
