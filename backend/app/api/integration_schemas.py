"""Response models of the integration endpoints: the freqtrade pairlist body and the live stream's event data, for
the OpenAPI document, the tests and client code (``docs/integrations.md`` shows them on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from app.api.errors import PROBLEM_JSON
from app.api.schemas import HORIZON_DOC, Freshness, _Strict


class PairlistResponse(Freshness):
    """Pairs to trade, best first, in the shape freqtrade's RemotePairList reads (``pairs``, ``refresh_period``)."""

    pairs: list[str] = Field(description="ccxt unified symbols (BASE/QUOTE), best-ranked first, after the filters")
    refresh_period: int = Field(
        ge=60, description="seconds until the next run is due (generated_at + schedule interval - now), at least 60"
    )
    horizon: str = Field(description=HORIZON_DOC)
    quote: str | None = Field(description="the quote currency kept (quote=), null when not filtered")
    total_analyzed: int = Field(description="the run's universe size, whatever the filters")


class StreamReady(_Strict):
    """The ``ready`` event's data: sent first on every stream, after the subscription is live."""

    exchanges: list[str] = Field(description="the exchanges whose runs this stream sends")
    heartbeat_s: float = Field(description="seconds between heartbeat comments when no event is sent")
    replayed: int = Field(description="run events replayed after Last-Event-ID, sent right after this one")
    missed: bool = Field(
        description="true when Last-Event-ID could not be resumed exactly (a run it names is gone, or more runs "
        "were published than are replayed): re-read the current data through the REST endpoints"
    )


class StreamRun(_Strict):
    """The ``run`` event's data: one newly published run."""

    run_id: str
    exchange: str
    as_of: datetime = Field(description="close time of the last candle the run used")
    published_at: datetime = Field(description="when the run was committed")


def problem_json_errors(statuses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """``statuses`` documented as ``application/problem+json`` bodies (the pairlist's errors)."""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        status: {"description": spec["description"], "content": {PROBLEM_JSON: {"schema": ref}}}
        for status, spec in statuses.items()
    }
