"""The Python client's retries, timeouts and live stream against a running API on both stacks, with the API's own
answers: ``503 data_not_ready`` retried after its ``Retry-After`` until a run is published, ``503 data_stale``
retried within the bound and then raised, ``429 too_many_streams`` retried until the key's stream slot is free, the
stream's typed events (sync and async) and their resume, and a stream read timeout. Last, the client on the
embedded stack's own worker (``dantaro run`` replaying the bundled candles).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from dantaro_client import (
    AsyncDantaroClient,
    EventStream,
    ReadyEvent,
    RequestTimeoutError,
    RetryPolicy,
    RunEvent,
    UnavailableError,
)

from app.config import DEVELOPMENT_KEY
from app.domain import utc_now
from tests.support.candles import copy_replay_pairs
from tests.support.client_stack import CLIENT_DIR, RETRY_AFTER_NOT_READY_S, ClientStack, Recorder
from tests.support.processes import ApiServer, dantaro_env
from tests.support.snapshots import build_snapshot
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

EVENT_TIMEOUT_S = 20.0  # a stream that sends no event by then has failed (heartbeats keep it open otherwise)
PATIENT = RetryPolicy(max_attempts=8, max_wait_s=20)


def _run_id(name: str) -> str:
    return f"run-{name}-{time.monotonic_ns()}"


@contextmanager
def _closed_after(events: EventStream, seconds: float) -> Iterator[EventStream]:
    """Close ``events`` after ``seconds`` so a missing event fails the test instead of hanging it."""
    timer = threading.Timer(seconds, events.close)
    timer.start()
    try:
        yield events
    finally:
        timer.cancel()
        events.close()


def _in_background(*steps: object) -> threading.Thread:
    def run() -> None:
        for step in steps:
            step()  # type: ignore[operator]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_data_not_ready_is_retried_after_its_retry_after_until_a_run_is_published(client_stack: ClientStack) -> None:
    recorder = Recorder()
    upbit = build_snapshot(run_id=_run_id("upbit"), exchange="upbit")  # upbit: configured, never published before
    publisher = _in_background(
        lambda: wait_for(lambda: 503 in recorder.statuses, timeout_s=15, what="a 503", poll_s=0.02),
        lambda: client_stack.publish(upbit, wait=False),
    )
    with recorder.sync_http() as http, client_stack.client(http_client=http, retry=PATIENT) as client:
        started_s = time.monotonic()
        ranked = client.recommendations(exchange="upbit", top_n=3)
        took_s = time.monotonic() - started_s
    publisher.join(timeout=15)
    assert ranked.exchange == "upbit" and ranked.run_id == upbit.run_id and len(ranked.recommendations) == 3
    retries = len(recorder.statuses) - 1
    assert recorder.statuses == [503] * retries + [200] and retries >= 1
    assert took_s >= retries * RETRY_AFTER_NOT_READY_S  # never sooner than Retry-After


def test_stale_data_is_retried_within_the_bound_then_raised_with_its_code(client_stack: ClientStack) -> None:
    client_stack.publish(build_snapshot(run_id=_run_id("stale"), generated_at=utc_now() - timedelta(hours=1)))
    recorder = Recorder()
    bounded = RetryPolicy(max_attempts=2, max_wait_s=10)
    with recorder.sync_http() as http, client_stack.client(http_client=http, retry=bounded) as client:
        started_s = time.monotonic()
        with pytest.raises(UnavailableError) as refused:
            client.pairlist(top_n=5)
        took_s = time.monotonic() - started_s
        assert client.recommendations(top_n=1).stale  # the other endpoints serve it, flagged
    error = refused.value
    assert error.status_code == 503 and error.code == "data_stale" and "stale" in error.message
    assert error.retry_after_s == RETRY_AFTER_NOT_READY_S and recorder.statuses[:2] == [503, 503]
    assert RETRY_AFTER_NOT_READY_S <= took_s < bounded.max_wait_s


def test_a_busy_stream_slot_429_is_retried_until_the_slot_is_free(client_stack: ClientStack) -> None:
    key = client_stack.new_key()  # one open stream per key on this API
    recorder = Recorder()
    with client_stack.client(api_key=key) as holder, holder.stream() as held:
        assert isinstance(next(held), ReadyEvent)
        closer = _in_background(
            lambda: wait_for(lambda: 429 in recorder.statuses, timeout_s=15, what="a 429", poll_s=0.02), held.close
        )
        with recorder.sync_http() as http, client_stack.client(api_key=key, http_client=http, retry=PATIENT) as client:
            started_s = time.monotonic()
            with client.stream() as events:  # opens here: refused, retried after Retry-After
                took_s = time.monotonic() - started_s
                ready = next(events)
        closer.join(timeout=15)
    assert isinstance(ready, ReadyEvent) and ready.data.replayed == 0
    retries = len(recorder.statuses) - 1
    assert recorder.statuses == [429] * retries + [200] and retries >= 1 and took_s >= retries * 1.0


def test_the_stream_yields_typed_run_events_and_resumes_after_the_last_id(client_stack: ClientStack) -> None:
    with client_stack.client(api_key=client_stack.new_key(), retry=PATIENT) as client:
        with _closed_after(client.stream(exchange="binance"), EVENT_TIMEOUT_S) as events:
            ready = next(events)
            assert isinstance(ready, ReadyEvent) and ready.data.exchanges == ["binance"] and ready.retry_ms == 3000
            assert ready.data.heartbeat_s == 1.0 and ready.id == f"binance:{client_stack.current.run_id}"
            live = client_stack.publish(build_snapshot(run_id=_run_id("live")), wait=False)
            event = next(events)  # heartbeats in between are skipped
            assert isinstance(event, RunEvent) and event.data.run_id == live.run_id == event.id.split(":")[1]
            assert event.data.exchange == "binance" and event.data.as_of == live.data_as_of
            resume_from = events.last_event_id
        missed = [client_stack.publish(build_snapshot(run_id=_run_id(f"missed{n}")), wait=False) for n in (1, 2)]
        with _closed_after(client.stream(exchange="binance", last_event_id=resume_from), EVENT_TIMEOUT_S) as events:
            ready = next(events)  # the closed stream's slot may still be held: a 429 first, retried
            assert isinstance(ready, ReadyEvent) and ready.data.replayed == 2 and not ready.data.missed
            assert [next(events).data.run_id for _ in missed] == [run.run_id for run in missed]
    client_stack.current = missed[-1]


async def test_the_async_stream_yields_the_same_events(client_stack: ClientStack) -> None:
    key = client_stack.new_key()
    async with client_stack.async_client(api_key=key, retry=PATIENT) as client, client.stream() as events:
        ready = await asyncio.wait_for(anext(events), EVENT_TIMEOUT_S)
        assert isinstance(ready, ReadyEvent) and ready.data.exchanges == ["binance", "upbit"]
        run = build_snapshot(run_id=_run_id("async"))
        await asyncio.to_thread(client_stack.publish, run, wait=False)
        event = await asyncio.wait_for(anext(events), EVENT_TIMEOUT_S)
        assert isinstance(event, RunEvent) and event.data.run_id == run.run_id
        assert events.last_event_id is not None and f"binance:{run.run_id}" in events.last_event_id
    client_stack.current = run


def test_a_stream_silent_beyond_its_read_timeout_raises(client_stack: ClientStack) -> None:
    with client_stack.client(api_key=client_stack.new_key(), stream_read_timeout_s=0.3) as client:
        events = client.stream()  # heartbeats come every second: more than 0.3 s of silence
        with events:
            assert isinstance(next(events), ReadyEvent)
            started_s = time.monotonic()
            with pytest.raises(RequestTimeoutError, match="ReadTimeout"):
                next(events)
        assert time.monotonic() - started_s < 1.0
        assert next(events, None) is None  # closed by the with block: the iteration has ended


@pytest.fixture(scope="module")
def replay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``dantaro run`` (API + worker, SQLite, in-process cache) replaying four bundled pairs every 2 s."""
    directory = tmp_path_factory.mktemp("client-replay")
    replay = copy_replay_pairs(directory / "replay", ["BTC", "ETH", "SOL", "ADA"])
    env = dantaro_env(directory, DANTARO_REPLAY_DATA_DIR=str(replay), DANTARO_ANALYSIS_INTERVAL_S="2")
    server = ApiServer(env, log_path=directory / "run.log", command="run")
    try:
        server.start(timeout_s=90)
        yield server
    finally:
        server.kill()


async def test_the_async_client_follows_the_worker_s_replay_runs(replay_server: ApiServer) -> None:
    async with AsyncDantaroClient(replay_server.base_url, DEVELOPMENT_KEY) as client, client.stream() as events:
        await asyncio.wait_for(anext(events), EVENT_TIMEOUT_S)
        run = await asyncio.wait_for(anext(events), 60)  # the worker's next published run
        assert isinstance(run, RunEvent)
        ranked, candles = await asyncio.gather(client.recommendations(top_n=4), client.candles("BTC", limit=5))
    assert ranked.as_of >= run.data.as_of and len(ranked.recommendations) == 4
    assert {item.symbol for item in ranked.recommendations} == {"BTC/USDT", "ETH/USDT", "SOL/USDT", "ADA/USDT"}
    assert candles.count == 5 and candles.candles[-1].open_time_ms + 3_600_000 <= candles.as_of.timestamp() * 1000


def test_the_readme_example_runs_against_dantaro_run(replay_server: ApiServer) -> None:
    readme = (CLIENT_DIR / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'DantaroClient("http://127.0.0.1:8000"' in example and len(example.strip().splitlines()) <= 12
    code = example.replace("http://127.0.0.1:8000", replay_server.base_url)
    env = {**os.environ, "PYTHONPATH": str(CLIENT_DIR / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"run \w+ as of \d{4}-\d\d-\d\d \d\d:\d\d, (fresh|stale)", lines[0]), lines
    assert [line.split()[0] for line in lines[1:5]] == ["1", "2", "3", "4"] and len(lines) == 6
    assert lines[-1].startswith("new run ") and lines[-1].split()[2] != lines[0].split()[1]
