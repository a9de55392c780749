"""``/health/ready``: can this API process serve fresh data right now?

Checks, run concurrently, each blocking call in the threadpool and bounded by ``timeout_s``:
- database: ``SELECT 1`` (latency in ms); required.
- redis: ``PING``, only when Redis is configured; a failure alone makes the status ``degraded``, not not-ready,
  because reads fall back to memory and the database.
- worker: the newest heartbeat of any worker; required to be younger than 3 x ``heartbeat_interval_s``.
- exchanges: each configured exchange's newest snapshot (through the ``SnapshotReader``, as requests read it);
  required to exist and not be stale (older than ``Settings.stale_after_s``).
Reasons are human-readable and never carry internal detail (hostnames, SQL): only the exception type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool

from app.api.deps import ApiRuntime
from app.api.renderers import View
from app.domain import Snapshot, utc_now
from app.storage.queries.heartbeats import HeartbeatRow, latest_heartbeats
from app.storage.sql import SqlConnection

T = TypeVar("T")

READY_TIMEOUT_S = 2.0
HEARTBEAT_INTERVALS_ALLOWED = 3


async def bounded(call: Callable[[], T], *, timeout_s: float) -> T:
    """Run blocking ``call`` in the threadpool; TimeoutError after ``timeout_s`` (the thread finishes alone)."""
    return await asyncio.wait_for(run_in_threadpool(call), timeout=timeout_s)


def _failure(name: str, exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"{name}: no answer within {timeout_s:g} s"
    return f"{name}: {type(exc).__name__}"


def _elapsed_ms(started_s: float) -> float:
    return round((time.perf_counter() - started_s) * 1000, 3)


def _database_probe(runtime: ApiRuntime) -> tuple[float, HeartbeatRow | None]:
    database = runtime.database
    if database is None:
        raise RuntimeError("the API runtime has no database")

    def probe(conn: SqlConnection) -> tuple[float, HeartbeatRow | None]:
        started_s = time.perf_counter()
        conn.tuples("SELECT 1")
        latency_ms = _elapsed_ms(started_s)
        beats = latest_heartbeats(conn)
        return latency_ms, beats[0] if beats else None

    return database.read(probe)


async def _database_and_worker(runtime: ApiRuntime, timeout_s: float, reasons: list[str]) -> tuple[View, View]:
    try:
        latency_ms, beat = await bounded(lambda: _database_probe(runtime), timeout_s=timeout_s)
    except Exception as exc:  # any failure is the answer: not ready
        reasons.append(_failure("database unreachable", exc, timeout_s))
        return {"ok": False, "latency_ms": None}, {"ok": False, "heartbeat_age_s": None, "worker_id": None}
    limit_s = HEARTBEAT_INTERVALS_ALLOWED * runtime.settings.heartbeat_interval_s
    if beat is None:
        reasons.append("worker: no worker heartbeat recorded")
        return {"ok": True, "latency_ms": latency_ms}, {"ok": False, "heartbeat_age_s": None, "worker_id": None}
    age_s = round(max(0.0, (utc_now() - beat.last_beat_at).total_seconds()), 3)
    if age_s > limit_s:
        reasons.append(f"worker: newest heartbeat ({beat.worker_id}) is {age_s:.0f} s old, limit {limit_s:g} s")
    worker = {"ok": age_s <= limit_s, "heartbeat_age_s": age_s, "worker_id": beat.worker_id}
    return {"ok": True, "latency_ms": latency_ms}, worker


async def _redis(runtime: ApiRuntime, timeout_s: float) -> View:
    client = runtime.redis_client
    if client is None:
        return {"configured": False, "ok": None, "latency_ms": None}
    started_s = time.perf_counter()
    try:
        await bounded(client.ping, timeout_s=timeout_s)
    except Exception:  # a failing Redis degrades the API, it does not stop it
        return {"configured": True, "ok": False, "latency_ms": None}
    return {"configured": True, "ok": True, "latency_ms": _elapsed_ms(started_s)}


async def newest_snapshot(runtime: ApiRuntime, exchange: str, *, timeout_s: float) -> Snapshot | None:
    """The exchange's newest published snapshot as requests would be served it (None before the first publish);
    also feeds the freshness metrics. Raises what the reader raised, or TimeoutError."""
    found = runtime.reader.peek(exchange)
    if found is None:
        found = await bounded(lambda: runtime.reader.get(exchange), timeout_s=timeout_s)
    if found is None:
        return None
    runtime.metrics.saw_run(exchange, generated_at=found[0].generated_at)
    return found[0]


async def _exchange(runtime: ApiRuntime, exchange: str, timeout_s: float, reasons: list[str]) -> View:
    try:
        snapshot = await newest_snapshot(runtime, exchange, timeout_s=timeout_s)
    except Exception as exc:  # unreadable data is not-ready data
        reasons.append(_failure(f"{exchange}: snapshot unreadable", exc, timeout_s))
        return {"ok": False, "run_id": None, "age_seconds": None, "stale": None}
    if snapshot is None:
        reasons.append(f"{exchange}: no analysis published yet")
        return {"ok": False, "run_id": None, "age_seconds": None, "stale": None}
    limit_s = runtime.settings.stale_after_s
    age_s = round(max(0.0, (utc_now() - snapshot.generated_at).total_seconds()), 3)
    if age_s > limit_s:
        reasons.append(f"{exchange}: data is stale ({age_s:.0f} s old, limit {limit_s:g} s)")
    return {"ok": age_s <= limit_s, "run_id": snapshot.run_id, "age_seconds": age_s, "stale": age_s > limit_s}


async def check_readiness(runtime: ApiRuntime, *, timeout_s: float = READY_TIMEOUT_S) -> tuple[int, View]:
    """``(HTTP status, body)``: 200 ``ready``/``degraded`` or 503 ``not_ready`` with the reasons."""
    reasons: list[str] = []
    exchanges = runtime.settings.exchanges
    (database, worker), redis, per_exchange = await asyncio.gather(
        _database_and_worker(runtime, timeout_s, reasons),
        _redis(runtime, timeout_s),
        asyncio.gather(*(_exchange(runtime, name, timeout_s, reasons) for name in exchanges)),
    )
    exchange_checks = dict(zip(exchanges, per_exchange, strict=True))
    checks = {"database": database, "redis": redis, "worker": worker, "exchanges": exchange_checks}
    if reasons:
        return 503, {"status": "not_ready", "reasons": reasons, "checks": checks}
    return 200, {"status": "degraded" if redis["ok"] is False else "ready", "checks": checks}
