"""Operations endpoints, no auth: ``/health`` (liveness: no database, no cache, constant time), ``/health/ready``
(readiness: database, Redis, worker heartbeat, data freshness; 503 with reasons) and ``/metrics`` (Prometheus text
exposition of this app's registry; the freshness gauges are refreshed at scrape time, bounded in time)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import RuntimeDep
from app.api.readiness import READY_TIMEOUT_S, check_readiness, newest_snapshot
from app.api.responses import OrjsonResponse
from app.api.schemas import HealthResponse
from app.prometheus import exposition

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
async def health(runtime: RuntimeDep) -> Response:
    """The process is up: its version and seconds since startup."""
    uptime_s = round(time.monotonic() - runtime.started_at_s, 3)
    return OrjsonResponse({"status": "ok", "version": runtime.version, "uptime_s": uptime_s})


@router.get("/health/ready", include_in_schema=False)
async def ready(runtime: RuntimeDep) -> Response:
    """Whether this process can serve fresh data: 200 ready/degraded, 503 not_ready with the reasons."""
    status_code, body = await check_readiness(runtime)
    return OrjsonResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/metrics", include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics of this API process."""
    await asyncio.gather(*(_refresh(runtime, exchange) for exchange in runtime.settings.exchanges))
    redis_usable = None if runtime.redis_client is None else runtime.reader.cache_status() == "ok"
    runtime.metrics.refresh(stale_after_s=runtime.settings.stale_after_s, redis_usable=redis_usable)
    body, content_type = runtime.metrics.exposition()
    if runtime.extra_metrics is not None:
        body += exposition(runtime.extra_metrics)[0]
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


async def _refresh(runtime: RuntimeDep, exchange: str) -> None:
    # A failing read leaves the last known run in place: its age keeps growing, and the gauges say so.
    with contextlib.suppress(Exception):
        await newest_snapshot(runtime, exchange, timeout_s=READY_TIMEOUT_S)
