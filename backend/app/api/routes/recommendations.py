"""``GET /api/v1/recommendations``: the current run's top-ranked symbols, best first, optionally filtered.

Filters apply before ``top_n``: ``min_score`` keeps ``total_score >= min_score``, ``label`` keeps one
``recommendation_strength``. ``total_analyzed`` is always the run's universe size, whatever the filters.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from app.api.deps import LoadedSnapshot, SnapshotsDep
from app.api.renderers import View
from app.api.schemas import ERROR_RESPONSES, RecommendationsResponse
from app.domain import Label

router = APIRouter(tags=["recommendations"])

TOP_N_DEFAULT = 50
TOP_N_MAX = 100


def select_recommendations(
    ranked: list[View], *, top_n: int, min_score: float | None = None, label: Label | None = None
) -> list[View]:
    """The first ``top_n`` of ``ranked`` that pass the filters."""
    if min_score is None and label is None:
        return ranked[:top_n]
    kept = [
        item
        for item in ranked
        if (min_score is None or item["total_score"] >= min_score)
        and (label is None or item["recommendation_strength"] == label.value)
    ]
    return kept[:top_n]


@router.get("/recommendations", response_model=RecommendationsResponse, responses=ERROR_RESPONSES)
async def get_recommendations(
    snapshots: SnapshotsDep,
    top_n: Annotated[int, Query(ge=1, le=TOP_N_MAX, description="how many symbols to return")] = TOP_N_DEFAULT,
    min_score: Annotated[float | None, Query(ge=0, le=1, description="keep total_score >= this")] = None,
    label: Annotated[Label | None, Query(description="keep only this recommendation_strength")] = None,
) -> Response:
    """The ``top_n`` best-ranked recommendations (after the filters) and the run they come from."""

    def build(loaded: LoadedSnapshot) -> View:
        runtime = snapshots.runtime
        ranked = runtime.recommendations.get(loaded.snapshot)
        items = runtime.fragments.get(
            loaded.snapshot,
            ("recommendations", top_n, min_score, label),
            lambda: select_recommendations(ranked, top_n=top_n, min_score=min_score, label=label),
        )
        return {
            "success": True,
            "recommendations": items,
            "total_analyzed": loaded.snapshot.universe_size,
            **loaded.freshness,
        }

    return await snapshots.respond(build)
