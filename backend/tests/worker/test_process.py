"""The worker as users start it: ``dantaro worker --once``, ``python backend/analysis_worker.py``, SIGTERM, and a
long-running worker on a replay folder with damaged files (partial runs every cycle, no traceback).

These run real subprocesses on a SQLite file and the bundled replay data.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.candles import copy_replay_pairs
from tests.support.damage import DAMAGES
from tests.support.paths import REPO_ROOT
from tests.support.processes import DANTARO, ApiServer, DantaroProcess, dantaro_env, log_events


def _run(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)


def _runs(tmp_path: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(tmp_path / "dantaro.sqlite3") as connection:
        rows = connection.execute("SELECT status, data_as_of FROM analysis_runs ORDER BY started_at").fetchall()
    return [(str(status), as_of) for status, as_of in rows]


def test_worker_refuses_an_unmigrated_database_in_one_line(tmp_path: Path) -> None:
    result = _run([*DANTARO, "worker", "--once"], dantaro_env(tmp_path))
    assert result.returncode != 0
    assert "run `dantaro migrate upgrade`" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_once_publishes_and_resumes_the_replay_clock(tmp_path: Path) -> None:
    env = dantaro_env(tmp_path)
    assert _run([*DANTARO, "migrate", "upgrade"], env).returncode == 0
    first = _run([*DANTARO, "worker", "--once"], env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "run_finished" in {event["event"] for event in log_events(first.stderr)}
    second = _run([sys.executable, "backend/analysis_worker.py", "--once"], env)
    assert second.returncode == 0, second.stderr[-2000:]
    runs = _runs(tmp_path)
    assert [status for status, _ in runs] == ["succeeded", "succeeded"]
    assert runs[0][1] is not None and runs[1][1] is not None
    assert runs[1][1] > runs[0][1]  # the restarted replay continued after the stored history


def test_worker_once_exits_non_zero_when_the_cycle_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty-replay"
    (empty / "1h").mkdir(parents=True)
    env = dantaro_env(tmp_path, DANTARO_REPLAY_DATA_DIR=str(empty))
    assert _run([*DANTARO, "migrate", "upgrade"], env).returncode == 0
    result = _run([*DANTARO, "worker", "--once"], env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_worker_stops_cleanly_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    env = dantaro_env(tmp_path, DANTARO_ANALYSIS_INTERVAL_S="0.5")
    assert _run([*DANTARO, "migrate", "upgrade"], env).returncode == 0
    process = subprocess.Popen([*DANTARO, "worker"], env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_runs(tmp_path)) < 2:
            time.sleep(0.2)
        assert len(_runs(tmp_path)) >= 2, "the worker did not publish two runs within 60 s"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-2000:]
    assert "worker_stopped" in {event["event"] for event in log_events(stderr)}
    statuses = {status for status, _ in _runs(tmp_path)}
    assert "running" not in statuses  # the in-flight run finished or was recorded as rolled back


@pytest.mark.parametrize(("signum", "exit_status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_dantaro_run_drains_its_worker_before_the_signal_ends_it(
    tmp_path: Path, signum: signal.Signals, exit_status: int
) -> None:
    env = dantaro_env(tmp_path, DANTARO_ANALYSIS_INTERVAL_S="0.5")
    served = ApiServer(env, log_path=tmp_path / "run.log", command="run").start(timeout_s=60)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _runs(tmp_path):
            time.sleep(0.2)
        assert served.process is not None and _runs(tmp_path), "dantaro run published no run within 60 s"
        served.process.send_signal(signum)
        returncode = served.process.wait(timeout=60)
    finally:
        served.kill()
    log_text = served.log_text()
    events = [event["event"] for event in log_events(log_text)]
    # the signal still says how it ended (uvicorn's convention) ...; the log's end tells why when it does not
    assert returncode == exit_status, log_text[-4000:]
    assert "worker_stopped" in events and events.index("worker_stopped") > events.index("api_stopping")  # ... after
    assert "running" not in {status for status, _ in _runs(tmp_path)}


def test_worker_refuses_development_defaults_in_production(tmp_path: Path) -> None:
    env = dantaro_env(tmp_path, DANTARO_ENV="production", DANTARO_DEV_KEY_ENABLED="false")
    env["DANTARO_DATABASE_URL"] = "postgresql+psycopg2://dantaro:CHANGE_ME@127.0.0.1:5432/dantaro"
    result = _run([*DANTARO, "worker", "--once"], env)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("put the real password in")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_worker_on_damaged_replay_files_publishes_partial_runs_every_cycle(tmp_path: Path) -> None:
    bases = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "DOT", "LTC"]
    replay = copy_replay_pairs(tmp_path / "replay", bases)
    DAMAGES["truncated"](replay / "1h" / "ADA_USDT-1h.json.gz")
    DAMAGES["bad_json"](replay / "1h" / "SOL_USDT-1h.json.gz")
    DAMAGES["string_value"](replay / "1d" / "XRP_USDT-1d.json.gz")
    damaged = {"ADA/USDT", "SOL/USDT", "XRP/USDT"}
    env = dantaro_env(tmp_path, DANTARO_REPLAY_DATA_DIR=str(replay), DANTARO_ANALYSIS_INTERVAL_S="0.5")
    assert _run([*DANTARO, "migrate", "upgrade"], env).returncode == 0
    worker = DantaroProcess(["worker"], env, log_path=tmp_path / "worker.log").start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and worker.alive and len(_published(tmp_path)) < 3:
            time.sleep(0.2)
        worker.kill(signal.SIGTERM)
    finally:
        worker.kill()
    runs = _published(tmp_path)
    assert len(runs) >= 3, worker.log_text()[-3000:]
    for status, errors, symbols in runs:
        assert status == "partial" and set(errors) == damaged
        assert symbols == {f"{b}/USDT" for b in bases} - damaged
    events = log_events(worker.log_text())
    assert "Traceback" not in worker.log_text() and "run_crashed" not in {e["event"] for e in events}
    [report] = [e for e in events if e["event"] == "replay_data_problems"]
    assert report["level"] == "warning" and report["count"] == 3
    assert {line.split(":")[0] for line in report["problems"]} == {
        "1h/ADA_USDT-1h.json.gz",
        "1h/SOL_USDT-1h.json.gz",
        "1d/XRP_USDT-1d.json.gz",
    }


def _published(tmp_path: Path) -> list[tuple[str, dict[str, str], set[str]]]:
    """(status, errors, recommended symbols) of every published run, oldest first."""
    with sqlite3.connect(tmp_path / "dantaro.sqlite3") as connection:
        runs = connection.execute(
            "SELECT run_id, status, errors FROM analysis_runs WHERE published_at IS NOT NULL ORDER BY started_at"
        ).fetchall()
        symbols = connection.execute("SELECT run_id, symbol FROM recommendations").fetchall()
    by_run: dict[str, set[str]] = {}
    for run_id, symbol in symbols:
        by_run.setdefault(run_id, set()).add(symbol)
    return [(status, json.loads(errors or "{}"), by_run.get(run_id, set())) for run_id, status, errors in runs]
