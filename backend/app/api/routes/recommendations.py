"""``GET /api/v1/recommendations``: the current run's top-ranked symbols at one horizon, best first, optionally
filtered.

``horizon`` picks one of the run's served horizons (default: the run's default horizon); ``rank``, ``total_score``,
``recommendation_strength`` and the order follow it, and the body names it with the served ones and its model.
Filters apply to that horizon before ``top_n``: ``min_score`` keeps ``total_score >= min_score``, ``label`` keeps one
``recommendation_strength``. ``total_analyzed`` is always the run's universe size, whatever the filters. A malformed
horizon is a 422 before anything is read; one the run does not serve is a 422 ``unknown_horizon`` naming the served
ones. Every list is rendered once per run, horizon and query (``FragmentMemo``).
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from starlette.responses import Response

from app.api.deps import HORIZON_PARAMETER, ApiRuntime, LoadedSnapshot, SnapshotsDep, horizon_parameter
from app.api.renderers import View, model_view
from app.api.schemas import ERROR_RESPONSES, RecommendationsResponse
from app.domain import Label, Snapshot

router = APIRouter(tags=["recommendations"])

TOP_N_DEFAULT = 50
TOP_N_MAX = 100


def select_recommendations(
    ranked: list[View],
    *,
    top_n: int,
    min_score: float | None = None,
    label: Label | None = None,
    quote: str | None = None,
) -> list[View]:
    """The first ``top_n`` of ``ranked`` that pass the filters (``quote``: the symbol's quote currency, upper case)."""
    if min_score is None and label is None and quote is None:
        return ranked[:top_n]
    kept = [
        item
        for item in ranked
        if (min_score is None or item["total_score"] >= min_score)
        and (label is None or item["recommendation_strength"] == label.value)
        and (quote is None or quote_of(item["symbol"]) == quote)
    ]
    return kept[:top_n]


def quote_of(symbol: str) -> str:
    """The quote currency of a ccxt unified symbol (``BTC/USDT`` -> ``USDT``)."""
    return symbol.rpartition("/")[2]


def horizon_part(runtime: ApiRuntime, snapshot: Snapshot, horizon: str) -> View:
    """The chosen horizon, the run's served ones and the chosen one's model (rendered once per run and horizon)."""
    return {
        "horizon": horizon,
        "horizons": list(runtime.horizons.get(snapshot).names),
        "model": runtime.fragments.get(snapshot, ("model", horizon), lambda: model_view(snapshot, horizon)),
    }


def ranked_part(
    runtime: ApiRuntime,
    snapshot: Snapshot,
    horizon: str,
    *,
    top_n: int,
    min_score: float | None = None,
    label: Label | None = None,
) -> orjson.Fragment:
    """The serialised top ``top_n`` of ``horizon``'s ranking after the filters."""
    return runtime.fragments.get(
        snapshot,
        ("recommendations", horizon, top_n, min_score, label),
        lambda: select_recommendations(
            runtime.recommendations.get(snapshot, horizon), top_n=top_n, min_score=min_score, label=label
        ),
    )


def recommendations_body(
    runtime: ApiRuntime,
    loaded: LoadedSnapshot,
    horizon: str,
    *,
    top_n: int,
    min_score: float | None = None,
    label: Label | None = None,
) -> View:
    """The payload of ``GET /recommendations`` (the FastAPI route's and the hot path's)."""
    snapshot = loaded.snapshot
    return {
        "success": True,
        "recommendations": ranked_part(runtime, snapshot, horizon, top_n=top_n, min_score=min_score, label=label),
        "total_analyzed": snapshot.universe_size,
        **horizon_part(runtime, snapshot, horizon),
        **loaded.freshness,
    }


@router.get(
    "/recommendations",
    response_model=RecommendationsResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": [HORIZON_PARAMETER]},
)
async def get_recommendations(
    snapshots: SnapshotsDep,
    top_n: Annotated[int, Query(ge=1, le=TOP_N_MAX, description="how many symbols to return")] = TOP_N_DEFAULT,
    min_score: Annotated[
        float | None, Query(ge=0, le=1, description="keep total_score >= this (at the chosen horizon)")
    ] = None,
    label: Annotated[
        Label | None, Query(description="keep only this recommendation_strength (at the chosen horizon)")
    ] = None,
) -> Response:
    """The ``top_n`` best-ranked recommendations at ``horizon`` (after the filters) and the run they come from."""
    requested = horizon_parameter(snapshots.request)  # read here, not declared: FastAPI's per-parameter cost
    loaded = await snapshots.load()
    chosen = snapshots.horizon(loaded.snapshot, requested)

    def build(loaded: LoadedSnapshot) -> View:
        return recommendations_body(snapshots.runtime, loaded, chosen, top_n=top_n, min_score=min_score, label=label)

    return snapshots.answer(loaded, build)
