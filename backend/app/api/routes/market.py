"""``GET /api/v1/market-status``: the exchange's market as a whole, plus measured data health."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import ApiRuntime, LoadedSnapshot, SnapshotsDep
from app.api.renderers import View, market_view, system_health_view
from app.api.schemas import ERROR_RESPONSES, MarketStatusResponse

router = APIRouter(tags=["market"])


def market_status_body(loaded: LoadedSnapshot, runtime: ApiRuntime) -> View:
    """The market-status payload of the original API plus the provenance fields."""
    snapshot = loaded.snapshot
    health = system_health_view(
        snapshot,
        loaded.freshness,
        stale_after_s=runtime.settings.stale_after_s,
        cache_status=runtime.reader.cache_status(),
    )
    return {
        "success": True,
        "status": "ok",
        "total_symbols": snapshot.universe_size,
        "system_health": health,
        "market_status": runtime.fragments.get(
            snapshot, ("market",), lambda: market_view(snapshot.market, updated_at=snapshot.generated_at)
        ),
        **loaded.freshness,
    }


@router.get("/market-status", response_model=MarketStatusResponse, responses=ERROR_RESPONSES)
async def get_market_status(snapshots: SnapshotsDep) -> Response:
    """Trend, sentiment, movers and volume of the current run, and how fresh that run is."""
    return await snapshots.respond(lambda loaded: market_status_body(loaded, snapshots.runtime))
