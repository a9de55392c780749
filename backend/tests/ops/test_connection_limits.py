"""Bounded connections of the real API server: silent and slow clients are closed, and running out of descriptors
is one rate-limited log event, not a traceback per accept; the server recovers on its own."""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from structlog.testing import capture_logs

from app.descriptors import AcceptErrorLog, descriptors_exhausted, watch_descriptors
from tests.support.clocks import ManualClock
from tests.support.nginx import wait_closed
from tests.support.processes import ApiServer, dantaro_env, log_events

HEADER_TIMEOUT_S = 2


def _api(tmp_path: Path, **settings: str) -> ApiServer:
    env = dantaro_env(tmp_path / "data", DANTARO_API_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S), **settings)
    return ApiServer(env, log_path=tmp_path / "api.log")


@pytest.mark.parametrize("payload", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "slow-head"])
def test_a_client_without_a_complete_request_head_is_closed(tmp_path: Path, payload: bytes) -> None:
    api = _api(tmp_path).start()
    try:
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as idle:
            idle.sendall(payload)
            assert httpx2.get(f"{api.base_url}/health", timeout=5).status_code == 200  # others are served
            assert wait_closed(idle, timeout_s=HEADER_TIMEOUT_S + 5) < HEADER_TIMEOUT_S + 2
    finally:
        api.kill()


def test_a_keep_alive_connection_still_serves_several_requests(tmp_path: Path) -> None:
    api = _api(tmp_path).start()
    try:
        with httpx2.Client(base_url=api.base_url, timeout=5) as client:
            for _ in range(3):
                assert client.get("/health").status_code == 200
                time.sleep(HEADER_TIMEOUT_S * 0.6)  # the deadline restarts with each request
    finally:
        api.kill()


def test_running_out_of_descriptors_is_logged_once_and_the_server_recovers(tmp_path: Path) -> None:
    api = _api(tmp_path)
    api.wrapper = ["prlimit", "--nofile=64:64", "--"]  # util-linux
    api.start()
    held: list[socket.socket] = []
    try:
        for _ in range(80):  # more than the server may open: accept() fails with EMFILE for a while
            try:
                held.append(socket.create_connection(("127.0.0.1", api.port), timeout=2))
            except OSError:
                break
        time.sleep(HEADER_TIMEOUT_S + 3)  # the deadline closes the silent connections
        recovered = httpx2.get(f"{api.base_url}/health", timeout=5).status_code
    finally:
        for sock in held:
            sock.close()
        api.kill()
    events = log_events(api.log_text())
    assert recovered == 200
    assert "Traceback" not in api.log_text()
    failures = [e for e in events if e.get("event") == "accept_failed"]
    assert 1 <= len(failures) <= 3 and failures[0]["reason"] == "Too many open files"


def test_the_accept_error_log_is_rate_limited_and_passes_other_errors_on() -> None:
    clock = ManualClock()
    handler = AcceptErrorLog(every_s=10.0, clock=clock)
    loop = asyncio.new_event_loop()
    passed: list[dict[str, object]] = []
    loop.default_exception_handler = passed.append  # type: ignore[method-assign]
    try:
        with capture_logs() as logs:
            for _ in range(1000):
                handler(loop, {"message": "accept", "exception": OSError(errno.EMFILE, "Too many open files")})
            clock.now_s += 11
            handler(loop, {"message": "accept", "exception": OSError(errno.ENFILE, "File table overflow")})
            handler(loop, {"message": "other", "exception": ValueError("a bug")})
    finally:
        loop.close()
    assert [(e["event"], e["failures"]) for e in logs] == [("accept_failed", 1), ("accept_failed", 1000)]
    assert [context["message"] for context in passed] == ["other"]


@pytest.mark.parametrize(("held", "soft_limit", "exhausted"), [(3, 3, True), (3, 4, False), (0, 1, False)])
def test_descriptors_are_exhausted_when_every_allowed_one_is_held(
    tmp_path: Path, held: int, soft_limit: int, exhausted: bool
) -> None:
    for n in range(held):
        (tmp_path / str(n)).touch()
    assert descriptors_exhausted(fd_dir=str(tmp_path), soft_limit=soft_limit) is exhausted


HOLD_EVERY_DESCRIPTOR = """
import os, resource
from app.descriptors import descriptors_exhausted
before = descriptors_exhausted()
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
print(before, descriptors_exhausted())
"""


def test_no_descriptor_left_to_list_them_is_exhaustion_and_a_missing_listing_is_not(tmp_path: Path) -> None:
    assert descriptors_exhausted(fd_dir=str(tmp_path / "absent"), soft_limit=1) is False
    # in a child process: every allowed descriptor held, so listing /proc/self/fd fails with EMFILE
    printed = subprocess.run([sys.executable, "-c", HOLD_EVERY_DESCRIPTOR], capture_output=True, text=True, check=True)
    assert printed.stdout.split() == ["False", "True"]


async def test_the_watch_records_exhaustion_once_per_check_and_logs_it_rate_limited() -> None:
    clock = ManualClock()
    handler = AcceptErrorLog(every_s=10.0, clock=clock)
    checks = iter([True, True, False])

    def exhausted() -> bool:
        try:
            return next(checks)
        except StopIteration:
            raise asyncio.CancelledError from None

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await watch_descriptors(handler, every_s=0.0, exhausted=exhausted)
    assert [(e["event"], e["reason"], e["failures"]) for e in logs] == [("accept_failed", "Too many open files", 1)]
    assert handler.failures == 1  # the second check is counted for the next event
