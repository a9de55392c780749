"""``GET /api/v1/recommendations``: the current run's top-ranked symbols, best first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from app.api.deps import RuntimeDep, SnapshotsDep
from app.api.responses import OrjsonResponse
from app.api.schemas import ERROR_RESPONSES, RecommendationsResponse

router = APIRouter(tags=["recommendations"])

TOP_N_DEFAULT = 50
TOP_N_MAX = 100


@router.get("/recommendations", response_model=RecommendationsResponse, responses=ERROR_RESPONSES)
async def get_recommendations(
    snapshots: SnapshotsDep,
    runtime: RuntimeDep,
    top_n: Annotated[int, Query(ge=1, le=TOP_N_MAX, description="how many symbols to return")] = TOP_N_DEFAULT,
) -> Response:
    """The ``top_n`` best-ranked recommendations and the run they come from."""
    loaded = await snapshots.load()
    snapshot = loaded.snapshot
    body = {
        "success": True,
        "recommendations": runtime.recommendations.get(snapshot)[:top_n],
        "total_analyzed": snapshot.universe_size,
        **loaded.freshness,
    }
    return OrjsonResponse(body)
