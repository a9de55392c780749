"""``app.single_flight``: one background refresh per key however many callers race, failures logged, never raised."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from app.single_flight import Joined, SingleFlight, in_background

WAIT_S = 5.0


class ThreadSpawn:
    """Runs each job on its own thread and keeps the threads, so a test can wait for every refresh."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def __call__(self, job: Callable[[], None]) -> None:
        thread = threading.Thread(target=job)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(WAIT_S)
            assert not thread.is_alive()


@pytest.mark.parametrize("callers", [2, 16, 64])
def test_racing_callers_start_exactly_one_refresh(callers: int) -> None:
    spawn, release = ThreadSpawn(), threading.Event()
    flight: SingleFlight[str] = SingleFlight(failure_event="test_refresh_failed", spawn=spawn)
    calls: list[str] = []

    def work() -> None:
        calls.append("refresh")
        release.wait(WAIT_S)  # still running while every caller tries to start one

    barrier, started = threading.Barrier(callers), []

    def caller() -> None:
        barrier.wait(WAIT_S)
        started.append(flight.start("binance", work))

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    release.set()
    spawn.join()
    assert sorted(started) == [False] * (callers - 1) + [True]
    assert calls == ["refresh"]
    assert flight.start("binance", work) is True  # released once the refresh ended
    spawn.join()
    assert calls == ["refresh", "refresh"]


def test_keys_refresh_independently() -> None:
    jobs: list[Callable[[], None]] = []
    flight: SingleFlight[str] = SingleFlight(failure_event="test_refresh_failed", spawn=jobs.append)
    done: list[str] = []
    assert flight.start("binance", lambda: done.append("binance"))
    assert flight.start("upbit", lambda: done.append("upbit"))
    assert not flight.start("binance", lambda: done.append("again"))
    for job in jobs:
        job()
    assert done == ["binance", "upbit"]


def test_a_failing_refresh_is_logged_never_raised_and_releases_its_key() -> None:
    jobs: list[Callable[[], None]] = []
    flight: SingleFlight[str] = SingleFlight(failure_event="test_refresh_failed", spawn=jobs.append)

    def broken() -> None:
        raise ConnectionError("database unreachable")

    assert flight.start("binance", broken, exchange="binance")
    with capture_logs() as logs:
        jobs.pop()()  # does not raise
    assert logs == [
        {"event": "test_refresh_failed", "log_level": "warning", "error_type": "ConnectionError", "exchange": "binance"}
    ]
    assert flight.start("binance", broken)  # released: the next caller past the stale point retries


def test_a_job_that_cannot_be_scheduled_releases_its_key() -> None:
    def refuse(job: Callable[[], None]) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    flight: SingleFlight[str] = SingleFlight(failure_event="test_refresh_failed", spawn=refuse)
    with pytest.raises(RuntimeError):
        flight.start("binance", lambda: None)
    with pytest.raises(RuntimeError):  # not "already running": the key was released
        flight.start("binance", lambda: None)


def test_in_background_runs_off_the_callers_thread_with_and_without_an_event_loop() -> None:
    ran_on: list[int] = []
    finished = threading.Event()

    def job() -> None:
        ran_on.append(threading.get_ident())
        finished.set()

    in_background(job)  # no running loop: a daemon thread
    assert finished.wait(WAIT_S)
    finished.clear()

    async def from_a_loop() -> int:
        in_background(job)  # the loop's default executor; the loop is not blocked
        await asyncio.to_thread(finished.wait, WAIT_S)
        return threading.get_ident()

    loop_thread = asyncio.run(from_a_loop())
    assert len(ran_on) == 2 and threading.get_ident() not in ran_on and loop_thread not in ran_on


@pytest.mark.parametrize("callers", [1, 8, 64])
async def test_concurrent_awaits_of_one_key_share_one_call(callers: int) -> None:
    joined: Joined[str, int] = Joined()
    release, calls = asyncio.Event(), []

    async def call() -> int:
        calls.append(1)
        await release.wait()
        return len(calls)

    waiting = [asyncio.ensure_future(joined.run("k", call)) for _ in range(callers)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [1] * callers
    assert await joined.run("k", call) == 2  # finished: the next await starts a new call


async def test_a_joined_failure_reaches_every_awaiter_and_other_keys_run_apart() -> None:
    joined: Joined[str, str] = Joined()

    async def fails() -> str:
        await asyncio.sleep(0)
        raise ValueError("lookup failed")

    async def works() -> str:
        return "ok"

    results = await asyncio.gather(
        joined.run("a", fails), joined.run("a", fails), joined.run("b", works), return_exceptions=True
    )
    assert [type(r).__name__ for r in results[:2]] == ["ValueError", "ValueError"]
    assert results[2] == "ok"


async def test_one_awaiter_leaving_does_not_cancel_the_call_for_the_others() -> None:
    joined: Joined[str, str] = Joined()
    release = asyncio.Event()

    async def call() -> str:
        await release.wait()
        return "done"

    leaving, staying = asyncio.ensure_future(joined.run("k", call)), asyncio.ensure_future(joined.run("k", call))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await staying == "done"
    assert leaving.cancelled()
