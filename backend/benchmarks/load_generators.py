"""Load generators of ``performance_test.py``: ``wrk`` (when installed) and a Python asyncio fallback.

Both keep ``connections`` keep-alive connections busy for ``duration_s`` with one request (method, path, body,
headers) and report p50/p99 latency (ms), requests/s, the requests answered and the failed ones: non-2xx/3xx answers
plus socket errors (connect, read, write, timeout; a connection the server closes after a ``Connection: close``
answer is reopened, not an error). ``wrk`` runs two threads and is set up by a Lua script (method, body, headers);
the Python generator shares the CPU with the servers, so its figures understate them. ``background_load`` runs
either until its block ends (the zero-downtime tests load the API while it is upgraded or a process is killed).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

WRK_THREADS = 2


@dataclass(frozen=True)
class Endpoint:
    """One request to load: a name, the method, the path (with query) and the body."""

    name: str
    method: str
    path: str
    body: bytes = b""


@dataclass
class LoadResult:
    """What loading one endpoint measured."""

    endpoint: Endpoint
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    errors: int
    body_bytes: int = 0
    requests: int = 0
    server_cpu_s: float = 0.0  # the server's CPU during the load, when the caller measured it


WRK_LUA = """
wrk.method = {method}
wrk.body = {body}
wrk.headers["Authorization"] = {authorization}
wrk.headers["Content-Type"] = "application/json"
"""
_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for this ASCII content


def _wrk_command(endpoint: Endpoint, *, port: int, script: str, connections: int, duration_s: float) -> list[str]:
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s:g}s", "--latency", "-s", script]
    return [*command, f"http://127.0.0.1:{port}{endpoint.path}"]


def _wrk_script(endpoint: Endpoint, *, headers: dict[str, str]) -> str:
    """A temporary Lua script setting the method, body and Authorization header (the caller removes it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            WRK_LUA.format(
                method=_lua_string(endpoint.method),
                body=_lua_string(endpoint.body.decode()) if endpoint.body else "nil",
                authorization=_lua_string(headers["Authorization"]),
            )
        )
    return script.name


def parse_wrk(endpoint: Endpoint, output: str) -> LoadResult:
    """What wrk's summary (with ``--latency``) says."""
    latency = {int(p): float(v) * _UNIT_MS[unit] for p, v, unit in _WRK_LATENCY.findall(output)}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    answered = re.search(r"(\d+) requests in", output)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    if rate is None or answered is None or 50 not in latency or 99 not in latency:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    result = LoadResult(endpoint, latency[50], latency[99], float(rate.group(1)), errors)
    result.requests = int(answered.group(1))
    return result


def wrk_load(
    endpoint: Endpoint, *, port: int, headers: dict[str, str], connections: int, duration_s: float
) -> LoadResult:
    """Load with wrk (a Lua script sets the method, body and Authorization header)."""
    script = _wrk_script(endpoint, headers=headers)
    try:
        command = _wrk_command(endpoint, port=port, script=script, connections=connections, duration_s=duration_s)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    return parse_wrk(endpoint, output)


@dataclass
class _Tally:
    """What the Python generator's connections counted."""

    errors: int = 0


async def _exchange(request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[bool, bool]:
    """One request and its response: (answered 2xx/3xx, the server keeps the connection open)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return head.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")), re.search(rb"(?i)connection:\s*close", head) is None


async def _one_connection(
    request: bytes, *, port: int, until: threading.Event | float, latencies: list[float], tally: _Tally
) -> None:
    """Requests on one connection until ``until`` (a deadline or a set event); reopened after a close or an error."""
    writer: asyncio.StreamWriter | None = None
    while not (until.is_set() if isinstance(until, threading.Event) else time.perf_counter() >= until):
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answered, open_ = await _exchange(request, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            tally.errors += 1
            answered, open_ = True, False
        else:
            latencies.append(time.perf_counter() - started)
            tally.errors += not answered
        if not open_ and writer is not None:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def _request_bytes(endpoint: Endpoint, *, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{endpoint.method} {endpoint.path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {len(endpoint.body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + endpoint.body


def _python_result(endpoint: Endpoint, latencies: list[float], *, errors: int, duration_s: float) -> LoadResult:
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    result = LoadResult(endpoint, pick(0.50), pick(0.99), len(ordered) / duration_s, errors)
    result.requests = len(ordered)
    return result


def python_load(
    endpoint: Endpoint, *, port: int, headers: dict[str, str], connections: int, duration_s: float
) -> LoadResult:
    """Load with asyncio keep-alive connections (when wrk is not installed); the generator shares the CPU."""
    request = _request_bytes(endpoint, port=port, headers=headers)
    latencies: list[float] = []
    tally = _Tally()

    async def load() -> None:
        until_s = time.perf_counter() + duration_s
        await asyncio.gather(
            *(
                _one_connection(request, port=port, until=until_s, latencies=latencies, tally=tally)
                for _ in range(connections)
            )
        )

    asyncio.run(load())
    return _python_result(endpoint, latencies, errors=tally.errors, duration_s=duration_s)


@contextmanager
def background_load(
    endpoint: Endpoint, *, port: int, headers: dict[str, str], connections: int
) -> Iterator[list[LoadResult]]:
    """Load ``endpoint`` until the block ends (wrk when installed, else the Python generator in a thread); the
    yielded list gets the result when it does."""
    results: list[LoadResult] = []
    started_s = time.perf_counter()
    if shutil.which("wrk"):
        script = _wrk_script(endpoint, headers=headers)
        command = _wrk_command(endpoint, port=port, script=script, connections=connections, duration_s=3600)
        wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            yield results
        finally:
            wrk.send_signal(signal.SIGINT)  # wrk stops and prints its summary
            output, _ = wrk.communicate(timeout=30)
            os.unlink(script)
        results.append(parse_wrk(endpoint, output))
        return
    stop, tally = threading.Event(), _Tally()
    latencies: list[float] = []
    request = _request_bytes(endpoint, port=port, headers=headers)

    async def load() -> None:
        await asyncio.gather(
            *(
                _one_connection(request, port=port, until=stop, latencies=latencies, tally=tally)
                for _ in range(connections)
            )
        )

    thread = threading.Thread(target=asyncio.run, args=(load(),), daemon=True)
    thread.start()
    try:
        yield results
    finally:
        stop.set()
        thread.join(timeout=30)
    duration_s = time.perf_counter() - started_s
    results.append(_python_result(endpoint, latencies, errors=tally.errors, duration_s=duration_s))
