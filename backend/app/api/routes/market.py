"""``GET /api/v1/market-status``: the exchange's market as a whole, plus measured data health."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import SettingsDep, SnapshotsDep
from app.api.responses import OrjsonResponse
from app.api.schemas import ERROR_RESPONSES, MarketStatusResponse
from app.api.views import market_view, system_health_view

router = APIRouter(tags=["market"])


@router.get("/market-status", response_model=MarketStatusResponse, responses=ERROR_RESPONSES)
async def get_market_status(snapshots: SnapshotsDep, settings: SettingsDep) -> Response:
    """Trend, sentiment, movers and volume of the current run, and how fresh that run is."""
    loaded = await snapshots.load()
    snapshot = loaded.snapshot
    body = {
        "success": True,
        "status": "ok",
        "total_symbols": snapshot.universe_size,
        "system_health": system_health_view(snapshot, loaded.freshness, stale_after_s=settings.stale_after_s),
        "market_status": market_view(snapshot.market, updated_at=snapshot.generated_at),
        **loaded.freshness,
    }
    return OrjsonResponse(body)
