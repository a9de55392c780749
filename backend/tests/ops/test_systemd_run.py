"""The systemd units under a real systemd: Debian 12 booted with systemd-nspawn, installed by deploy.sh, then each
promise of the units checked from the host and from inside (docs/operations.md, "Tested under systemd").

One machine for the module (the ``deployed`` fixture, ``backend/tests/ops/conftest.py``): the tests run in file order
against one deployment, each leaves both services running, and the last one powers the machine off and boots it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest

from tests.support.paths import REPO_ROOT
from tests.support.queries import query
from tests.support.systemd_stack import UNITS, SystemdStack, timespan_s
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

API, WORKER = "dantaro-api.service", "dantaro-worker.service"
SERVICES = (API, WORKER)
BAD_SETTING = "DANTARO_RETRY_MAX_ATTEMPTS"  # must be >= 1: every command refuses to start (exit 2, one line)
CRASH_DROP_IN = "/run/systemd/system/{unit}.d/50-crash-loop.conf"
EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d) (\w+)")


def _restart(deployed: SystemdStack, *units: str) -> None:
    deployed.run("systemctl", "restart", *units)
    deployed.wait_ready()


def _proc_status(deployed: SystemdStack, unit: str) -> dict[str, str]:
    return _pid_status(deployed, deployed.show(unit, "MainPID")["MainPID"])


def _pid_status(deployed: SystemdStack, pid: str) -> dict[str, str]:
    text = deployed.run("cat", f"/proc/{pid}/status").stdout
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


def test_install_creates_the_user_the_env_file_and_enabled_running_units(deployed: SystemdStack) -> None:
    assert deployed.run("stat", "-c", "%a %U:%G", "/etc/dantaro/dantaro.env").stdout.split() == ["640", "root:dantaro"]
    assert deployed.run("stat", "-c", "%U:%G", "/var/lib/dantaro").stdout.strip() == "dantaro:dantaro"
    assert deployed.run("getent", "passwd", "dantaro").stdout.strip().endswith(":/usr/sbin/nologin")
    uid = deployed.run("id", "-u", "dantaro").stdout.strip()
    # LimitNOFILE=65536, clamped by systemd to what PID 1 may grant (this CI's sandbox caps every process at 20000)
    ceiling = _open_files_limit(deployed, "1")[1]
    expected_nofile = (min(65536, ceiling),) * 2
    assert expected_nofile[0] > 2 * 1000  # DANTARO_API_MAX_CONNECTIONS (1000) and the handles beside them
    for unit in UNITS:
        assert deployed.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled"
        assert deployed.show(unit, "ActiveState")["ActiveState"] == "active", unit
    for unit in SERVICES:
        assert _proc_status(deployed, unit)["Uid"].split()[0] == uid  # runs as the service user, not root
        assert deployed.release(unit) == deployed.live_release()
        assert _open_files_limit(deployed, deployed.show(unit, "MainPID")["MainPID"]) == expected_nofile


def _open_files_limit(deployed: SystemdStack, pid: str) -> tuple[int, int]:
    """(soft, hard) limit of open files of process ``pid`` inside."""
    limits = deployed.run("cat", f"/proc/{pid}/limits").stdout
    match = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
    assert match, limits
    return int(match.group(1)), int(match.group(2))


def test_api_serves_what_the_worker_published_under_systemd(deployed: SystemdStack) -> None:
    deployed.wait_ready()
    ready = httpx2.get(f"{deployed.api_url}/health/ready", timeout=5.0).json()
    assert ready["status"] == "ready", ready  # database, Redis, a worker heartbeat and a fresh binance run
    key = deployed.create_key("systemd-test")  # as the runbook says: sudo -u dantaro env DANTARO_ENV_FILE=...
    headers = {"Authorization": f"Bearer {key}"}
    body = httpx2.get(f"{deployed.api_url}/api/v1/recommendations?top_n=100", headers=headers, timeout=5.0).json()
    status, published, symbols_ok = deployed.runs()[body["run_id"]]
    assert (status, published) == ("succeeded", True)
    assert len(body["recommendations"]) == symbols_ok == 5  # DANTARO_UNIVERSE_SIZE of the env file


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@pytest.mark.parametrize("unit", SERVICES)
def test_the_journal_holds_the_services_json_lines(deployed: SystemdStack, unit: str) -> None:
    name = unit.removesuffix(".service")
    entries = deployed.journal(unit)
    own = [entry["MESSAGE"] for entry in entries if entry.get("SYSLOG_IDENTIFIER") == name]
    assert own and all(_is_json_object(message) for message in own), [m for m in own if not _is_json_object(m)][:3]
    others = {entry.get("SYSLOG_IDENTIFIER") for entry in entries} - {name}
    assert others <= {"systemd"}, others  # `journalctl -u` adds systemd's own lines ("Started ..."): not JSON
    lines = deployed.run("journalctl", "-t", name, "-o", "cat", "--no-pager").stdout.splitlines()  # the runbook's
    assert lines and all(_is_json_object(line) for line in lines)
    events = {json.loads(line)["event"] for line in lines}
    assert ("request" if unit == API else "run_finished") in events


def test_security_exposure_is_ok_or_better_and_documented(deployed: SystemdStack) -> None:
    docs = (REPO_ROOT / "docs" / "operations.md").read_text()
    for unit in UNITS:
        output = deployed.run("systemd-analyze", "security", unit, "--no-pager").stdout
        match = EXPOSURE.search(output)
        assert match and match.group(1) == unit, output[-500:]
        score, rating = match.group(2), match.group(3)
        assert rating in {"OK", "SAFE", "PERFECT"}, f"{unit}: {score} {rating}"
        assert f"| `{unit}` | {score} {rating} |" in docs, f"docs/operations.md must record {unit}: {score} {rating}"


def test_a_changed_env_file_takes_effect_after_restart(deployed: SystemdStack) -> None:
    assert httpx2.get(f"{deployed.api_url}/openapi.json", timeout=5.0).status_code == 404  # production: docs off
    deployed.configure({"DANTARO_DOCS_ENABLED": "true", "DANTARO_UNIVERSE_SIZE": "3"})
    assert httpx2.get(f"{deployed.api_url}/openapi.json", timeout=5.0).status_code == 404  # read at start only
    known = set(deployed.runs())
    _restart(deployed, *SERVICES)
    assert httpx2.get(f"{deployed.api_url}/openapi.json", timeout=5.0).status_code == 200
    fresh = deployed.wait_for_new_run(known)
    assert deployed.runs()[fresh][2] == 3


def test_killed_worker_is_back_after_restart_sec_and_publishes_again(deployed: SystemdStack) -> None:
    before = deployed.show(WORKER, "MainPID", "NRestarts", "RestartUSec")
    restart_s = timespan_s(before["RestartUSec"])
    known = set(deployed.runs())
    deployed.run("systemctl", "kill", "--signal=SIGKILL", WORKER)
    back_s = wait_for(
        lambda: deployed.show(WORKER, "MainPID")["MainPID"] not in {before["MainPID"], "0"},
        timeout_s=restart_s + 15,
        what="the worker to be started again",
        poll_s=0.05,
    )
    assert restart_s - 0.5 <= back_s <= restart_s + 3, back_s  # systemd waited RestartSec, then started it
    assert int(deployed.show(WORKER, "NRestarts")["NRestarts"]) == int(before["NRestarts"]) + 1
    fresh = deployed.wait_for_new_run(known)
    started = "SELECT started_at FROM analysis_runs WHERE run_id = '{}'"
    left = f"SELECT run_id FROM analysis_runs WHERE status = 'running' AND started_at < ({started.format(fresh)})"
    # a run the kill interrupted was marked abandoned by the next worker
    assert query(deployed.database_url, left) == []


def _assert_every_run_whole(deployed: SystemdStack) -> None:
    for run_id, (status, published, symbols_ok) in deployed.runs().items():
        assert status != "running", run_id
        rows = deployed.rows_of(run_id)
        if published:
            assert rows["recommendations"] == symbols_ok and rows["market_status"] == 1, (run_id, rows)
        else:
            assert rows == dict.fromkeys(rows, 0), (run_id, status, rows)


def _stop_timed(deployed: SystemdStack, unit: str) -> float:
    timeout_s = timespan_s(deployed.show(unit, "TimeoutStopUSec")["TimeoutStopUSec"])
    started_s = time.monotonic()
    deployed.run("systemctl", "stop", unit, timeout_s=timeout_s + 30)
    elapsed_s = time.monotonic() - started_s
    state = deployed.show(unit, "ActiveState", "Result")
    assert state == {"ActiveState": "inactive", "Result": "success"}, state  # not killed at the timeout
    assert elapsed_s < timeout_s, (unit, elapsed_s, timeout_s)
    return elapsed_s


def test_stop_ends_each_unit_within_its_timeout_with_no_half_published_run(deployed: SystemdStack) -> None:
    try:
        _stop_timed(deployed, API)
        running: list[str] = []

        def a_run_is_running() -> bool:
            running[:] = [run_id for run_id, (status, _, _) in deployed.runs().items() if status == "running"]
            return bool(running)

        wait_for(a_run_is_running, timeout_s=30, what="a run in progress", poll_s=0.02)
        _stop_timed(deployed, WORKER)  # in the middle of that run
        status, published, _ = deployed.runs()[running[0]]
        assert (status, published) in {("succeeded", True), ("partial", True), ("failed", False)}
        _assert_every_run_whole(deployed)
    finally:
        _restart(deployed, *SERVICES)


@contextmanager
def _crash_loop(deployed: SystemdStack) -> Iterator[None]:
    for unit in SERVICES:
        deployed.run("mkdir", "-p", f"/run/systemd/system/{unit}.d")
        deployed.machine.write_file(CRASH_DROP_IN.format(unit=unit), f"[Service]\nEnvironment={BAD_SETTING}=0\n")
    deployed.run("systemctl", "daemon-reload")
    deployed.run("systemctl", "reset-failed", *SERVICES)  # the start limit counts from here
    try:
        yield
    finally:
        deployed.run("rm", "-f", *(CRASH_DROP_IN.format(unit=unit) for unit in SERVICES))
        deployed.run("systemctl", "daemon-reload")
        deployed.run("systemctl", "reset-failed", *SERVICES)  # what the runbook says to do after fixing the cause
        _restart(deployed, *SERVICES)


def test_a_crash_loop_stops_at_the_start_limit(deployed: SystemdStack) -> None:
    limits = {unit: deployed.show(unit, "StartLimitBurst", "RestartUSec") for unit in SERVICES}
    cursors = {unit: deployed.journal(unit)[-1]["__CURSOR"] for unit in SERVICES}
    with _crash_loop(deployed):
        deployed.run("systemctl", "restart", *SERVICES)
        slowest_s = max(timespan_s(limit["RestartUSec"]) for limit in limits.values())
        burst = int(limits[WORKER]["StartLimitBurst"])
        wait_for(
            lambda: all(deployed.show(unit, "ActiveState")["ActiveState"] == "failed" for unit in SERVICES),
            timeout_s=burst * (slowest_s + 5),
            what="both units to give up",
            poll_s=0.5,
        )
        given_up = {unit: deployed.show(unit, "NRestarts")["NRestarts"] for unit in SERVICES}
        time.sleep(slowest_s + 2)  # past a restart delay: nothing starts again
        for unit in SERVICES:
            after = deployed.show(unit, "ActiveState", "NRestarts")
            assert after == {"ActiveState": "failed", "NRestarts": given_up[unit]}
            entries = deployed.journal(unit, since_cursor=cursors[unit])
            own = [e["MESSAGE"] for e in entries if e.get("SYSLOG_IDENTIFIER") == unit.removesuffix(".service")]
            refusals = [line for line in own if f"invalid setting {BAD_SETTING}" in line]
            assert len(refusals) == int(limits[unit]["StartLimitBurst"]), own  # each start: one readable line
            assert not any("Traceback" in line for line in own)
            assert any("Start request repeated too quickly" in e["MESSAGE"] for e in entries)
        refused = deployed.run("systemctl", "start", API, check=False)
        assert refused.returncode != 0  # until `systemctl reset-failed`, even by hand


def _unit_pids(deployed: SystemdStack, unit: str) -> list[str]:
    """The unit's main process and its descendants (the API's supervisor and its processes)."""
    pids, todo = [], [deployed.show(unit, "MainPID")["MainPID"]]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += deployed.run("cat", f"/proc/{pid}/task/{pid}/children").stdout.split()
    return pids


def test_memory_peaks_fit_under_memory_max(deployed: SystemdStack) -> None:
    # The peaks of every process of the unit, summed: an upper bound of the unit's peak (this host's cgroup v1
    # memory controller is not handed to the machine, so MemoryMax is not enforced in it and has no peak to read).
    processes = {unit: _unit_pids(deployed, unit) for unit in SERVICES}
    assert len(processes["dantaro-api.service"]) >= 2  # the supervisor and at least one API process
    for unit, pids in processes.items():
        limit_bytes = int(deployed.show(unit, "MemoryMax")["MemoryMax"])
        peak_bytes = sum(int(_pid_status(deployed, pid)["VmHWM"].split()[0]) * 1024 for pid in pids)
        assert peak_bytes < limit_bytes, (unit, peak_bytes, limit_bytes)


def test_units_come_back_enabled_and_serving_after_power_off_and_boot(deployed: SystemdStack) -> None:
    known = set(deployed.runs())
    deployed.machine.poweroff()
    assert deployed.machine.nspawn is None
    assert not deployed.ready()
    deployed.machine.boot()
    for unit in UNITS:
        assert deployed.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled"
    migrated = deployed.run("journalctl", "-b", "-u", "dantaro-migrate", "-t", "dantaro-migrate", "-o", "cat").stdout
    assert "database at revision" in migrated  # the oneshot ran again at this boot, before the others
    for unit in SERVICES:
        assert deployed.show(unit, "ActiveState")["ActiveState"] == "active", unit
    deployed.wait_ready()
    assert deployed.wait_for_new_run(known)
