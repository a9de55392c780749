"""``POST /api/v1/bundle``: recommendations, support levels and market status of one run in one call.

Every part comes from the same run (one snapshot load). A malformed symbol is a 422; a well-formed symbol the run
did not analyse is listed in ``unknown_symbols`` instead of failing the whole bundle. ``horizon`` (in the body) picks
the recommendations' horizon as ``GET /recommendations?horizon=`` does, and is checked even when recommendations are
not asked for (an unserved one is a 422); the recommendations part then also carries ``horizon``, ``horizons`` and
``model``.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import LoadedSnapshot, SnapshotsDep
from app.api.renderers import FragmentMemo, View, support_levels_fragment
from app.api.responses import OrjsonResponse
from app.api.routes.levels import parse_symbol
from app.api.routes.market import market_status_body
from app.api.routes.recommendations import horizon_part, ranked_part
from app.api.schemas import ERROR_RESPONSES, BundleRequest, BundleResponse

router = APIRouter(tags=["bundle"])


def _levels_part(loaded: LoadedSnapshot, candidates: dict[str, list[str]], fragments: FragmentMemo) -> View:
    snapshot = loaded.snapshot
    found: View = {}
    unknown: list[str] = []
    for text, readings in candidates.items():
        resolved = next((symbol for symbol in readings if symbol in snapshot.levels), None)
        if resolved is None:
            unknown.append(text)
        else:
            found[resolved] = support_levels_fragment(fragments, snapshot, resolved)
    return {"support_levels": found, "unknown_symbols": unknown}


@router.post("/bundle", response_model=BundleResponse, responses=ERROR_RESPONSES)
async def post_bundle(request: BundleRequest, snapshots: SnapshotsDep) -> Response:
    """The parts asked for, all from the exchange's current run."""
    runtime = snapshots.runtime
    quote = runtime.settings.quote_currency(snapshots.exchange)
    candidates = {text: parse_symbol(text, default_quote=quote) for text in request.symbols}
    loaded = await snapshots.load()
    horizon = snapshots.horizon(loaded.snapshot, request.horizon)
    body: View = {"success": True, "total_analyzed": loaded.snapshot.universe_size, **loaded.freshness}
    if request.include_recommendations:
        count = request.recommendations_count  # the same part as GET /recommendations?top_n=count&horizon=...
        body["recommendations"] = ranked_part(runtime, loaded.snapshot, horizon, top_n=count)
        body.update(horizon_part(runtime, loaded.snapshot, horizon))
    if request.include_support_levels:
        body.update(_levels_part(loaded, candidates, runtime.fragments))
    if request.include_market_status:
        market = market_status_body(loaded, runtime)
        body["market_status"] = market["market_status"]
        body["system_health"] = market["system_health"]
    return OrjsonResponse(body, headers={"Cache-Control": "no-store"})
