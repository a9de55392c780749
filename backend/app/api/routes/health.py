"""``GET /health``: liveness of the API process. No auth, no database, no cache: constant time."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import RuntimeDep
from app.api.responses import OrjsonResponse
from app.api.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
async def health(runtime: RuntimeDep) -> Response:
    """The process is up: its version and seconds since startup."""
    uptime_s = round(time.monotonic() - runtime.started_at_s, 3)
    return OrjsonResponse({"status": "ok", "version": runtime.version, "uptime_s": uptime_s})
