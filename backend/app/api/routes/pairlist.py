"""``GET /api/v1/pairlist``: the current run's best-ranked pairs in the body freqtrade's ``RemotePairList`` reads.

The pairs are the recommendations endpoint's selection (``select_recommendations``: ``horizon``, ``min_score``,
``label``, then ``top_n``) plus ``quote=``, as ccxt unified symbols, best first; the same tiers, ETag and 304 serve
them. ``refresh_period`` is the seconds until the next run is due (the ``Cache-Control`` max-age), at least 60.

Stale data is refused, not served: when the run is ``stale`` (older than twice the schedule interval) the answer is
503 ``data_stale``. freqtrade reads only ``pairs`` and ``refresh_period`` and never looks at the HTTP status
(``RemotePairList.fetch_pairlist``): any body whose content type contains ``application/json`` is taken as the new
list, so an error body in ``application/json`` would silently become an empty pairlist (no trades in whitelist mode,
nothing excluded in blacklist mode). Every error of this endpoint therefore carries our usual error body as
``application/problem+json`` (``errors_as``), which freqtrade treats as a failed fetch: with
``keep_pairlist_on_failure`` (its default) a running bot keeps its last list, and a bot starting with a wrong token or
on stale data stops with an error instead of trading on nothing or on old picks.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from app.api.deps import HORIZON_PARAMETER, LoadedSnapshot, SnapshotsDep, horizon_parameter
from app.api.errors import PROBLEM_JSON, ApiError, errors_as
from app.api.http_cache import max_age_s
from app.api.integration_schemas import PairlistResponse, problem_json_errors
from app.api.renderers import View
from app.api.routes.recommendations import TOP_N_DEFAULT, TOP_N_MAX, quote_of, select_recommendations
from app.api.schemas import ERROR_RESPONSES
from app.config import Settings
from app.domain import Label, Snapshot, utc_now

router = APIRouter(tags=["integrations"])

MIN_REFRESH_PERIOD_S = 60
STALE_RETRY_AFTER_MAX_S = 60
QUOTE_PATTERN = r"^[A-Za-z0-9]{1,16}$"
PAIRLIST_ERRORS = problem_json_errors(
    {
        **ERROR_RESPONSES,
        422: {"description": "invalid parameter, a horizon the run does not serve or a quote it has no pair in"},
        503: {"description": "no run published yet (data_not_ready) or the current run is stale (data_stale)"},
    }
)


def refresh_period_s(snapshot: Snapshot, settings: Settings) -> int:
    """Seconds until the next run is due, at least ``MIN_REFRESH_PERIOD_S``."""
    due_s = max_age_s(snapshot, interval_s=settings.schedule_interval_s, now=utc_now())
    return max(MIN_REFRESH_PERIOD_S, due_s)


def _refuse_stale(loaded: LoadedSnapshot, settings: Settings) -> None:
    if not loaded.freshness["stale"]:
        return
    snapshot = loaded.snapshot
    retry_after_s = math.ceil(min(settings.schedule_interval_s, STALE_RETRY_AFTER_MAX_S))
    raise ApiError(
        status_code=503,
        code="data_stale",
        message=f"the newest run of {snapshot.exchange} ({snapshot.run_id}) is {loaded.freshness['age_seconds']:.0f} s "
        f"old, beyond the {settings.stale_after_s:g} s after which data is stale: the worker has not published "
        "since; keep your last pairlist and retry later",
        headers={"Retry-After": str(retry_after_s)},
    )


def _check_quote(snapshot: Snapshot, quote: str | None) -> str | None:
    if quote is None:
        return None
    wanted = quote.upper()
    quotes = sorted({quote_of(rec.symbol) for rec in snapshot.recommendations})
    if wanted not in quotes:
        raise ApiError(
            status_code=422,
            code="unknown_quote",
            message=f"quote {quote!r}: the run of {snapshot.exchange} has no pair in it; its quotes: "
            f"{', '.join(quotes) or 'none'}",
        )
    return wanted


@router.get(
    "/pairlist",
    response_model=PairlistResponse,
    responses=PAIRLIST_ERRORS,
    openapi_extra={"parameters": [HORIZON_PARAMETER]},
)
@errors_as(PROBLEM_JSON)
async def get_pairlist(
    snapshots: SnapshotsDep,
    top_n: Annotated[int, Query(ge=1, le=TOP_N_MAX, description="how many pairs to return")] = TOP_N_DEFAULT,
    min_score: Annotated[
        float | None, Query(ge=0, le=1, description="keep total_score >= this (at the chosen horizon)")
    ] = None,
    label: Annotated[
        Label | None, Query(description="keep only this recommendation_strength (at the chosen horizon)")
    ] = None,
    quote: Annotated[
        str | None, Query(pattern=QUOTE_PATTERN, description="keep only pairs in this quote currency, e.g. USDT")
    ] = None,
) -> Response:
    """The best-ranked pairs at ``horizon`` after the filters, for freqtrade's RemotePairList."""
    requested = horizon_parameter(snapshots.request)
    loaded = await snapshots.load()
    settings = snapshots.settings
    _refuse_stale(loaded, settings)
    chosen = snapshots.horizon(loaded.snapshot, requested)
    kept_quote = _check_quote(loaded.snapshot, quote)

    def build(loaded: LoadedSnapshot) -> View:
        runtime, snapshot = snapshots.runtime, loaded.snapshot

        def pairs() -> list[str]:
            ranked = runtime.recommendations.get(snapshot, chosen)
            selected = select_recommendations(ranked, top_n=top_n, min_score=min_score, label=label, quote=kept_quote)
            return [item["symbol"] for item in selected]

        return {
            "success": True,
            "pairs": runtime.fragments.get(snapshot, ("pairs", chosen, top_n, min_score, label, kept_quote), pairs),
            "refresh_period": refresh_period_s(snapshot, settings),
            "horizon": chosen,
            "quote": kept_quote,
            "total_analyzed": snapshot.universe_size,
            **loaded.freshness,
        }

    return snapshots.answer(loaded, build)
