"""Load generators of ``performance_test.py``: ``wrk`` (when installed) and a Python asyncio fallback.

Both keep ``connections`` keep-alive connections busy for ``duration_s`` with one request (method, path, body,
headers) and report p50/p99 latency (ms), requests/s and the failed or non-2xx/3xx answers. ``wrk`` runs two threads
and is set up by a Lua script (method, body, headers); the Python generator shares the CPU with the servers, so its
figures understate them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
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


def wrk_load(
    endpoint: Endpoint, *, port: int, headers: dict[str, str], connections: int, duration_s: float
) -> LoadResult:
    """Load with wrk (a Lua script sets the method, body and Authorization header)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            WRK_LUA.format(
                method=_lua_string(endpoint.method),
                body=_lua_string(endpoint.body.decode()) if endpoint.body else "nil",
                authorization=_lua_string(headers["Authorization"]),
            )
        )
    try:
        command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s:g}s", "--latency", "-s", script.name]
        url = f"http://127.0.0.1:{port}{endpoint.path}"
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    latency = {int(p): float(v) * _UNIT_MS[unit] for p, v, unit in _WRK_LATENCY.findall(output)}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    if rate is None or 50 not in latency or 99 not in latency:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return LoadResult(endpoint, latency[50], latency[99], float(rate.group(1)), errors)


async def _one_connection(request: bytes, *, port: int, until_s: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while time.perf_counter() < until_s:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            errors += not head.startswith(b"HTTP/1.1 2")
    finally:
        writer.close()
    return errors


def python_load(
    endpoint: Endpoint, *, port: int, headers: dict[str, str], connections: int, duration_s: float
) -> LoadResult:
    """Load with asyncio keep-alive connections (when wrk is not installed); the generator shares the CPU."""
    lines = [f"{endpoint.method} {endpoint.path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {len(endpoint.body)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + endpoint.body
    latencies: list[float] = []

    async def load() -> int:
        until_s = time.perf_counter() + duration_s
        tasks = [_one_connection(request, port=port, until_s=until_s, latencies=latencies) for _ in range(connections)]
        return sum(await asyncio.gather(*tasks))

    errors = asyncio.run(load())
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return LoadResult(endpoint, pick(0.50), pick(0.99), len(ordered) / duration_s, errors)
