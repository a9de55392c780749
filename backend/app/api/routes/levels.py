"""``GET /api/v1/support-levels/{symbol}``: support and resistance for one symbol of the current run.

``symbol`` may be written ``BTC`` (the exchange's quote currency is assumed), ``BTC-USDT``, ``BTC_USDT``,
``USDT-BTC`` or ``BTC/USDT`` (``%2F`` in a URL); the first reading present in the run wins. Text that cannot
be a pair is a 422; a pair the run did not analyse is a 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from app.api.deps import ApiRuntime, LoadedSnapshot, SnapshotsDep
from app.api.errors import ApiError
from app.api.renderers import View, support_levels_fragment
from app.api.schemas import ERROR_RESPONSES, SYMBOL_MAX_CHARS, SupportLevelsResponse
from app.domain import Snapshot, symbol_candidates

router = APIRouter(tags=["levels"])
SymbolPath = Annotated[
    str, Path(max_length=SYMBOL_MAX_CHARS, description="BTC, BTC-USDT, BTC_USDT, USDT-BTC or BTC/USDT")
]


def parse_symbol(text: str, *, default_quote: str) -> list[str]:
    """The unified symbols ``text`` may mean, most likely first; ApiError 422 when it cannot be a pair."""
    try:
        return symbol_candidates(text, default_quote=default_quote)
    except ValueError as exc:
        raise ApiError(status_code=422, code="invalid_symbol", message=str(exc)) from None


def pick_symbol(text: str, candidates: list[str], *, snapshot: Snapshot) -> str:
    """The first candidate the run has levels for; ApiError 404 naming the symbol when there is none."""
    for candidate in candidates:
        if candidate in snapshot.levels:
            return candidate
    raise ApiError(
        status_code=404,
        code="unknown_symbol",
        message=f"symbol {text!r} (read as {' or '.join(candidates)}) has no levels on {snapshot.exchange} in run "
        f"{snapshot.run_id}; list the analysed symbols with GET /api/v1/symbols?exchange={snapshot.exchange}",
    )


def support_levels_body(runtime: ApiRuntime, loaded: LoadedSnapshot, symbol: str) -> View:
    """The payload of ``GET /support-levels/{symbol}`` for a ``symbol`` the run has levels for."""
    return {
        "success": True,
        "symbol": symbol,
        "support_levels": support_levels_fragment(runtime.fragments, loaded.snapshot, symbol),
        **loaded.freshness,
    }


@router.get("/support-levels/{symbol:path}", response_model=SupportLevelsResponse, responses=ERROR_RESPONSES)
async def get_support_levels(
    symbol: SymbolPath,
    snapshots: SnapshotsDep,
) -> Response:
    """Three support and resistance tiers and every level found for ``symbol``."""
    candidates = parse_symbol(symbol, default_quote=snapshots.settings.quote_currency(snapshots.exchange))

    def build(loaded: LoadedSnapshot) -> View:
        resolved = pick_symbol(symbol, candidates, snapshot=loaded.snapshot)
        return support_levels_body(snapshots.runtime, loaded, resolved)

    return await snapshots.respond(build)
