"""``dantaro api --workers 2`` as real processes on a SQLite file: a killed process is replaced and no request fails
after a short window, SIGTERM drains every process without failing a request (one in progress, one sent on an idle
kept-alive connection while the server stops), ``dantaro api-reload`` starts each new process before it stops the
old one, ``/metrics`` sums every process's series, a killed one's included, and processes that cannot start make
the start fail with one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import DEV_AUTH, migrated_database
from tests.support.load import Load
from tests.support.network import free_port
from tests.support.processes import dantaro_env, log_events, run_dantaro
from tests.support.raw_http import head, read_response
from tests.support.snapshots import build_snapshot
from tests.support.supervised import SupervisedApi, ask, connect_to
from tests.support.waiting import wait_for

# docs/operations.md: requests in flight on a killed process fail with it; every request that starts later than
# this after the kill is answered (those the kernel gives the dead process's socket wait for its replacement).
KILL_WINDOW_S = 1.0
RECOMMENDATIONS = "/api/v1/recommendations?top_n=5"
BUNDLE = b'{"include_recommendations": true, "recommendations_count": 5, "symbols": ["BTC"]}'


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedApi]:
    """Two API processes serving one published run of the bundled candles (development settings), shared by the
    tests below in their order (the last one stops it)."""
    tmp_path = tmp_path_factory.mktemp("supervised")
    with migrated_database(tmp_path) as db:
        db.publish(build_snapshot(run_id="run-1", bases=("BTC", "ETH", "SOL")))
        env = dantaro_env(tmp_path / "data", DANTARO_DATABASE_URL=db.url, DANTARO_EXCHANGES="binance")
        server = SupervisedApi(env, log_path=tmp_path / "api.log", workers=2).start()
        try:
            yield server
        finally:
            server.kill(signal.SIGTERM)


def _listening(pid: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in psutil.Process(pid).net_connections(kind="tcp"))
    except psutil.NoSuchProcess:
        return False


def _health_total(sock: socket.socket) -> float:
    text = ask(sock, "GET", "/metrics").body.decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "dantaro_api_requests_total" and sample.labels["route"] == "/health"
    )


def test_metrics_are_summed_over_the_processes_and_keep_a_killed_ones_counts(api: SupervisedApi) -> None:
    pids = api.alive_processes()
    assert pids is not None
    first, second = (connect_to(api.port, pid, candidates=pids) for pid in pids)
    with first, second:
        time.sleep(1.5)  # every earlier request (the start's health checks) is spooled
        before = _health_total(first)
        for sock, count in ((first, 3), (second, 5)):
            assert all(ask(sock, "GET", "/health").status == 200 for _ in range(count))
        wait_for(lambda: _health_total(first) == before + 8, timeout_s=5, what="both processes' counts on /metrics")
        assert _health_total(second) == before + 8  # the same sum, whichever process answers
        time.sleep(1.5)  # the second process's last flush (every second) is behind us
        os.kill(pids[1], signal.SIGKILL)
        wait_for(
            lambda: (now := api.alive_processes()) is not None and pids[1] not in now,
            timeout_s=30,
            what="a replacement",
        )
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as anyone:
        assert _health_total(anyone) == before + 8  # the killed process's requests are still counted


def test_a_killed_process_is_replaced_and_every_request_after_the_window_is_answered(api: SupervisedApi) -> None:
    victim = api.state().processes[0]
    assert victim is not None
    with Load(api.base_url, paths=["/health", RECOMMENDATIONS], headers=DEV_AUTH, threads=4, timeout_s=30) as load:
        time.sleep(1.0)
        killed_at_s = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (pids := api.alive_processes()) is not None and victim not in pids,
            timeout_s=30,
            what="a replacement process",
        )
        time.sleep(2.0)  # the replacement serves under the load too
    after = [reply for reply in load.replies if reply.at_s > killed_at_s + KILL_WINDOW_S]
    failed_after = [reply for reply in after if reply.status != 200]
    failed = [reply for reply in load.replies if reply.status != 200]
    assert len(after) > 50 and not failed_after, failed_after[:3]
    assert len(failed) <= 4, failed[:5]  # at most the requests in flight on the killed process (4 clients)
    exited = [e for e in log_events(api.log_text()) if e.get("event") == "api_process_exited" and e["pid"] == victim]
    assert [(e["slot"], e["restart_in_s"]) for e in exited] == [(0, 0.0)]


def test_api_reload_starts_each_new_process_before_it_stops_the_old_one(api: SupervisedApi, tmp_path: Path) -> None:
    before = api.alive_processes()
    assert before is not None
    reloaded = run_dantaro(["api-reload"], api.env, timeout_s=120)
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    assert "reloaded in" in reloaded.stdout
    after = api.alive_processes()
    assert after is not None and not set(after) & set(before)
    wait_for(lambda: not any(psutil.pid_exists(pid) for pid in before), timeout_s=30, what="the old processes to exit")
    events = [(e["event"], e.get("pid")) for e in log_events(api.log_text()) if "pid" in e]
    for old, new in zip(before, after, strict=True):
        assert events.index(("api_process_ready", new)) < events.index(("api_process_stopping", old))
    assert api.state().last_reload == {
        "ok": True,
        "detail": "2 new processes serve",
        "duration_s": api.state().last_reload["duration_s"],  # type: ignore[index]
    }
    nobody = run_dantaro(["api-reload"], dantaro_env(tmp_path / "elsewhere"))
    assert nobody.returncode == 3 and "no `dantaro api` supervisor runs" in nobody.stderr


def test_sigterm_finishes_requests_in_progress_and_answers_idle_connections_once_more(api: SupervisedApi) -> None:
    pids = api.alive_processes()
    assert pids is not None
    idle = connect_to(api.port, pids[0], candidates=pids)
    busy = connect_to(api.port, pids[1], candidates=pids)
    with idle, busy:
        assert ask(idle, "GET", "/health").status == 200  # a kept-alive connection, idle from now on
        headers = {**DEV_AUTH, "Content-Type": "application/json", "Content-Length": str(len(BUNDLE))}
        busy.sendall(head("POST", "/api/v1/bundle", headers) + BUNDLE[:10])  # a request in progress
        time.sleep(0.3)
        assert api.process is not None
        api.process.send_signal(signal.SIGTERM)
        wait_for(
            lambda: not any(_listening(pid) for pid in pids), timeout_s=10, what="both processes to stop", poll_s=0.01
        )
        late = ask(idle, "GET", "/health")  # sent while its process stops
        busy.sendall(BUNDLE[10:])
        finished = read_response(busy)
        status = api.process.wait(timeout=30)
        assert idle.recv(1) == b"" and busy.recv(1) == b""  # closed by the server after those answers
    assert late.status == 200 and late.headers["connection"] == "close"
    assert finished.status == 200 and finished.headers["connection"] == "close"
    assert json.loads(finished.body)["recommendations"]
    assert status == 0 and not any(psutil.pid_exists(pid) for pid in pids)


def test_processes_that_cannot_start_fail_the_start_with_one_line(tmp_path: Path) -> None:
    env = dantaro_env(tmp_path / "data", DANTARO_LAUNCHER="/bin/false")  # every API process exits at once
    started = run_dantaro(["api", "--workers", "2", "--port", str(free_port())], env, timeout_s=60)
    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == "dantaro api: the API processes did not start; their log is above"
    assert "api_start_failed" in started.stderr and not (tmp_path / "data" / "api-supervisor.json").exists()
