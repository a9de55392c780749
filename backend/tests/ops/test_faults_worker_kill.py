"""Fault: the worker is SIGKILLed in the middle of a run (its run row is ``running``, candles half collected).

Real processes on a SQLite file: a first complete run (3 symbols), then ``dantaro api``, then a worker whose first
cycle collects 1000 hourly candles for every bundled pair (a couple of seconds), killed while its run is running.
Nothing of the killed run may be visible (no published rows; the API keeps serving the previous run), the next
worker's run completes, every published run is whole, and the stored candles have no duplicates and no gaps.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx2
import pytest

from tests.support.api import DEV_AUTH
from tests.support.load import Reply, fetch
from tests.support.processes import ApiServer, DantaroProcess, dantaro_env, run_dantaro
from tests.support.queries import hourly_open_times, open_time_steps, query

HOUR_MS = 3_600_000
RUN_ROWS = ("recommendations", "support_levels", "market_status")


def _runs(url: str) -> dict[str, tuple[str, bool, int]]:
    """run_id → (status, published, symbols_ok)."""
    rows = query(url, "SELECT run_id, status, published_at IS NOT NULL, symbols_ok FROM analysis_runs")
    return {str(run_id): (str(status), bool(published), int(str(ok))) for run_id, status, published, ok in rows}


def _rows_of(url: str, run_id: str) -> dict[str, int]:
    return {
        table: int(str(query(url, f"SELECT COUNT(*) FROM {table} WHERE run_id = '{run_id}'")[0][0]))
        for table in RUN_ROWS
    }


def _wait_for_running(url: str, *, known: set[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = [
            run_id for run_id, (status, _, _) in _runs(url).items() if status == "running" and run_id not in known
        ]
        if running:
            return running[0]
        time.sleep(0.02)
    raise AssertionError(f"no new run reached status running within {timeout_s} s")


def _served(client: httpx2.Client) -> Reply:
    reply = fetch(client, "/api/v1/recommendations?top_n=100")
    assert reply.status == 200, reply
    return reply


def _recommendation_count(client: httpx2.Client) -> tuple[str, int]:
    body = client.get("/api/v1/recommendations", params={"top_n": 100}).json()
    return str(body["run_id"]), len(body["recommendations"])


def _assert_candles_whole(url: str) -> None:
    duplicates = query(
        url,
        "SELECT exchange, symbol, timeframe, open_time_ms FROM candles "
        "GROUP BY exchange, symbol, timeframe, open_time_ms HAVING COUNT(*) > 1",
    )
    assert not duplicates, duplicates[:5]
    for symbol, open_times in hourly_open_times(url).items():
        steps = open_time_steps(open_times)
        assert steps == {HOUR_MS}, f"{symbol}: hourly open-time steps {sorted(steps)[:5]}"


def _kill_mid_run(client: httpx2.Client, worker: DantaroProcess, url: str, *, first_run: str) -> str:
    """Start the worker, SIGKILL it while its run is ``running``: the API keeps serving ``first_run`` whole."""
    worker.start()
    killed_run = _wait_for_running(url, known={first_run}, timeout_s=20)
    time.sleep(0.5)  # into the collection of 1000 candles × 2 timeframes × every pair
    worker.kill(signal.SIGKILL)
    status, published, _ = _runs(url)[killed_run]
    assert (status, published) == ("running", False), "the run finished before the kill: too fast to interrupt"
    assert _rows_of(url, killed_run) == dict.fromkeys(RUN_ROWS, 0)
    for _ in range(15):  # 1.5 s: past the API's 1 s re-validation against the database
        assert _served(client).run_id == first_run
        time.sleep(0.1)
    assert _recommendation_count(client) == (first_run, _runs(url)[first_run][2])
    return killed_run


def _next_run_completes(client: httpx2.Client, env: dict[str, str], url: str, *, done: set[str]) -> None:
    """A new worker's run succeeds and the API serves all of it within a few seconds."""
    second = run_dantaro(["worker", "--once"], env)
    assert second.returncode == 0, second.stderr[-3000:]
    runs = _runs(url)
    (next_run,) = set(runs) - done
    assert runs[next_run][:2] == ("succeeded", True), runs[next_run]
    deadline = time.monotonic() + 5
    while _served(client).run_id != next_run and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _recommendation_count(client) == (next_run, runs[next_run][2])


@pytest.mark.slow
def test_worker_killed_mid_run_leaves_no_partial_run_and_the_next_run_completes(tmp_path: Path) -> None:
    base = {"DANTARO_REPLAY_WARMUP_CANDLES": "1000", "DANTARO_LOOKBACK_CANDLES": "1000"}
    small = dantaro_env(tmp_path, DANTARO_UNIVERSE_SIZE="3", **base)
    full = dantaro_env(tmp_path, DANTARO_UNIVERSE_SIZE="40", **base)
    url = f"sqlite:///{tmp_path / 'dantaro.sqlite3'}"
    api = ApiServer(small, log_path=tmp_path / "api.log")
    worker = DantaroProcess(["worker"], full, log_path=tmp_path / "killed-worker.log")
    try:
        assert run_dantaro(["migrate", "upgrade"], small).returncode == 0
        first = run_dantaro(["worker", "--once"], small)
        assert first.returncode == 0, first.stderr[-3000:]
        (first_run,) = _runs(url)
        api.start()
        with httpx2.Client(base_url=api.base_url, headers=DEV_AUTH, timeout=5.0) as client:
            assert _served(client).run_id == first_run
            killed_run = _kill_mid_run(client, worker, url, first_run=first_run)
            _next_run_completes(client, full, url, done={first_run, killed_run})
    finally:
        worker.kill()
        api.kill()
    runs = _runs(url)
    assert runs[killed_run][0] not in {"succeeded", "partial"} and not runs[killed_run][1], runs[killed_run]
    assert _rows_of(url, killed_run) == dict.fromkeys(RUN_ROWS, 0)
    for run_id, (_, published, symbols_ok) in runs.items():
        if published:
            assert _rows_of(url, run_id)["recommendations"] == symbols_ok, run_id
    _assert_candles_whole(url)
