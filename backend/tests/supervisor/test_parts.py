"""The supervisor's parts without its processes: the restart delay, the per-slot sockets, the data-directory lock and
state, what ``dantaro api-reload`` refuses, the launcher, and the metrics spool summed over processes."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.errors import UsageError
from app.prometheus import LoopCounter, LoopHistogram, ProcessSpool, aggregated_exposition, retire_process
from app.supervisor.sockets import bind_slots
from app.supervisor.state import (
    NotSupervisedError,
    SupervisorState,
    lock_data_dir,
    read_state,
    request_reload,
    write_state,
)
from app.supervisor.supervisor import LAUNCHER_ENV, launcher, restart_delay_s


def test_a_slot_is_replaced_at_once_then_with_a_doubling_delay_while_it_keeps_dying_young() -> None:
    assert [restart_delay_s(n) for n in range(1, 9)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_every_slot_listens_on_the_same_port_and_a_taken_port_is_one_readable_error() -> None:
    (first,) = bind_slots("127.0.0.1", 0, count=1, backlog=8)
    port = first.getsockname()[1]
    more = bind_slots("127.0.0.1", port, count=2, backlog=8)  # the same group: SO_REUSEPORT
    try:
        assert {sock.getsockname() for sock in more} == {("127.0.0.1", port)}
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        for sock in [first, *more]:
            sock.close()
    with socket.socket() as plain:  # a listener outside the group (say, a single `dantaro api`)
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        taken = plain.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{taken}: Address already in use"):
            bind_slots("127.0.0.1", taken, count=2, backlog=8)


def test_one_supervisor_per_data_directory(tmp_path: Path) -> None:
    with lock_data_dir(tmp_path):
        write_state(tmp_path, SupervisorState(pid=4321, address="127.0.0.1:8000", workers=2))
        with pytest.raises(UsageError, match=r"another `dantaro api` supervisor \(pid 4321\) uses the data directory"):
            lock_data_dir(tmp_path)
    lock_data_dir(tmp_path).close()  # free again once the holder is gone


def test_api_reload_refuses_when_no_supervisor_holds_the_directory(tmp_path: Path) -> None:
    with pytest.raises(NotSupervisedError, match="no `dantaro api` supervisor runs"):
        request_reload(tmp_path, pid=None, timeout_s=1)
    write_state(tmp_path, SupervisorState(pid=4321, address="127.0.0.1:8000", workers=2))
    with pytest.raises(NotSupervisedError, match="no `dantaro api` supervisor runs"):  # a state left by a dead one
        request_reload(tmp_path, pid=None, timeout_s=1)
    with lock_data_dir(tmp_path):
        write_state(tmp_path, SupervisorState(pid=4321, address="127.0.0.1:8000", workers=2))
        with pytest.raises(NotSupervisedError, match="process 99 is not the `dantaro api` supervisor"):
            request_reload(tmp_path, pid=99, timeout_s=1)  # systemd's main pid is a single process
    assert read_state(tmp_path) == SupervisorState(pid=4321, address="127.0.0.1:8000", workers=2)


def test_processes_start_through_the_launcher_a_release_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LAUNCHER_ENV, "/opt/dantaro-central/current/bin/dantaro")
    assert launcher() == ("/opt/dantaro-central/current/bin/dantaro",)
    monkeypatch.delenv(LAUNCHER_ENV)
    assert launcher() == (sys.executable, "-m", "app.cli")


def _process_series(directory: Path, pid: int, *, requests: float, durations_s: list[float]) -> ProcessSpool:
    registry = CollectorRegistry()
    counter = LoopCounter("demo_requests", "Requests.", ["route"], registry=registry)
    histogram = LoopHistogram("demo_seconds", "Latency.", ["route"], buckets=(0.01, 0.1), registry=registry)
    counter.inc(("/a",), requests)
    for duration_s in durations_s:
        histogram.observe(("/a",), duration_s)
    spool = ProcessSpool(directory, [counter, histogram], pid=pid)
    spool.flush()
    return spool


def _samples(directory: Path) -> dict[tuple[str, str], float]:
    text = aggregated_exposition(directory).decode()
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_spool_sums_processes_and_a_retired_process_keeps_counting(tmp_path: Path) -> None:
    spools = [
        _process_series(tmp_path, 1001, requests=3, durations_s=[0.005, 0.05]),
        _process_series(tmp_path, 1002, requests=5, durations_s=[0.005, 0.5, 0.5]),
    ]
    expected = {
        ("demo_requests_total", ""): 8.0,
        ("demo_seconds_bucket", "0.01"): 2.0,
        ("demo_seconds_bucket", "0.1"): 3.0,
        ("demo_seconds_bucket", "+Inf"): 5.0,
        ("demo_seconds_count", ""): 5.0,
        ("demo_seconds_sum", ""): pytest.approx(1.06),
    }
    assert _samples(tmp_path) == expected
    spools[0].close()
    retire_process(tmp_path, 1001)  # it exited: its series move to the retired totals
    retire_process(tmp_path, 1001)  # twice is harmless
    assert not list(tmp_path.glob("*_1001.db")) and (tmp_path / "counter_loop_retired.db").exists()
    assert _samples(tmp_path) == expected
    spools[1].close()
