"""Server processes for the benchmarks: a free port, one request's body, and a server spawned until it is healthy.

Times are monotonic seconds; ``spawn`` terminates what it started, and kills it after 10 s.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.load_generators import Endpoint

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0


@dataclass
class Served:
    """A spawned server process and its spawn-to-ready time."""

    process: subprocess.Popen[bytes]
    ready_s: float = field(default=0.0)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(endpoint: Endpoint, *, port: int, headers: dict[str, str]) -> bytes:
    """The body ``endpoint`` answers with (status 200 required)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        extra = {"Content-Type": "application/json"} if endpoint.body else {}
        connection.request(endpoint.method, endpoint.path, body=endpoint.body or None, headers={**headers, **extra})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"{endpoint.method} {endpoint.path} answered {response.status}: {body[:200]!r}")
    return body


def _healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False


@contextmanager
def spawn(command: list[str], *, env: dict[str, str], port: int, log_path: Path | None = None) -> Iterator[Served]:
    """Start ``command`` (its standard error appended to ``log_path`` if given), wait until ``/health`` on ``port``
    is 200 (timing it), terminate it afterwards."""
    started = time.monotonic()
    with open(log_path, "ab") if log_path else contextlib.nullcontext() as stderr:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=stderr)
        try:
            while not _healthy(port):
                if process.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
                    said = "" if log_path is None else f"; the end of {log_path}: {_tail(log_path)}"
                    raise RuntimeError(f"{command[0]} did not become ready (exit status {process.poll()}){said}")
                time.sleep(0.005)
            yield Served(process, ready_s=time.monotonic() - started)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _tail(path: Path, *, max_bytes: int = 2000) -> str:
    """The last ``max_bytes`` of a log file (a server that failed to start said why there)."""
    with path.open("rb") as log:
        log.seek(max(0, path.stat().st_size - max_bytes))
        return log.read().decode(errors="replace")
