"""The hot path's plans: for each data endpoint it answers, the query parameters the FastAPI route reads and how
the route's own body builder (``*_body``) makes the answer from a run in memory (``app.api.hot_path``).

A plan raises ``ValueError`` (or the routes' ``ApiError``) for anything FastAPI must answer: a parameter not in
plain form or out of range, an unknown symbol or horizon, a track-record body not in this process's store yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from app.api import deps
from app.api.deps import ApiRuntime, LoadedSnapshot
from app.api.horizons import pick_horizon
from app.api.renderers import View
from app.api.routes import catalog, levels, market, recommendations, track_record
from app.domain import Label, Snapshot

MEMORY = "memory"  # the data source of every answer from the in-process copy
SYMBOL_PART = "/{symbol:path}"
_WHOLE = re.compile(r"[1-9][0-9]{0,5}")
_FRACTION = re.compile(r"[01](?:\.[0-9]{1,12})?")


@dataclass(frozen=True, slots=True)
class Asked:
    """What a route's plan reads: the runtime, the request, the run it is answered from, its query and symbol."""

    runtime: ApiRuntime
    request: Request
    snapshot: Snapshot
    query: dict[str, str]
    symbol: str

    def horizon(self) -> str:
        """The served horizon asked for (``horizon_parameter``, ``pick_horizon``: ApiError as the routes raise)."""
        served = self.runtime.horizons.get(self.snapshot)
        return pick_horizon(served, deps.horizon_parameter(self.request), snapshot=self.snapshot)

    def whole(self, name: str, *, default: int, maximum: int) -> int:
        """A whole-number parameter in plain form within 1..``maximum``."""
        text = self.query.get(name)
        if text is None:
            return default
        if _WHOLE.fullmatch(text) is None or int(text) > maximum:
            raise ValueError(name)
        return int(text)


@dataclass(frozen=True, slots=True)
class Plan:
    """How to build one answer's body from the run, and its validators (default: ``etag_for`` the request)."""

    build: Callable[[LoadedSnapshot], View]
    etag: str | None = None
    version: str | None = None  # the track-record version the body is for


def _recommendations(asked: Asked) -> Plan:
    top_n = asked.whole("top_n", default=recommendations.TOP_N_DEFAULT, maximum=recommendations.TOP_N_MAX)
    text = asked.query.get("min_score")
    if text is not None and (_FRACTION.fullmatch(text) is None or float(text) > 1):
        raise ValueError("min_score")
    min_score = None if text is None else float(text)
    label = Label(asked.query["label"]) if "label" in asked.query else None  # ValueError: not a label
    horizon, runtime = asked.horizon(), asked.runtime
    return Plan(
        lambda loaded: recommendations.recommendations_body(
            runtime, loaded, horizon, top_n=top_n, min_score=min_score, label=label
        )
    )


def _support_levels(asked: Asked) -> Plan:
    snapshot, runtime = asked.snapshot, asked.runtime
    candidates = levels.parse_symbol(asked.symbol, default_quote=runtime.settings.quote_currency(snapshot.exchange))
    symbol = levels.pick_symbol(asked.symbol, candidates, snapshot=snapshot)
    return Plan(lambda loaded: levels.support_levels_body(runtime, loaded, symbol))


def _market_status(asked: Asked) -> Plan:
    return Plan(lambda loaded: market.market_status_body(loaded, asked.runtime))


def _symbols(asked: Asked) -> Plan:
    horizon = asked.horizon()
    return Plan(lambda loaded: catalog.symbols_body(asked.runtime, loaded, horizon))


def _track(asked: Asked, parts: tuple[object, ...], *, symbol: bool = False) -> Plan:
    """A track-record body already in this process's store (``store.peek``) for the current scores' version."""
    store, snapshot = asked.runtime.track_record, asked.snapshot
    version = None if store is None else store.known_version(snapshot.exchange)
    if store is None or version is None:
        raise ValueError("track-record version")
    loaded = LoadedSnapshot(snapshot, MEMORY, {}, {})
    served = track_record.ServedRun(loaded, asked.horizon(), list(asked.runtime.horizons.get(snapshot).names))
    key = track_record.track_key(snapshot.exchange, version, served, parts)
    view = store.peek(key)
    if view is None or (symbol and view["symbol"] is None):  # not loaded yet, or the route's 404
        raise ValueError("track-record body")
    body = track_record.track_body(snapshot.exchange, served, view, MEMORY)
    return Plan(lambda loaded: body, etag=track_record.track_etag(key), version=version)


def _track_summary(asked: Asked) -> Plan:
    days = asked.whole("days", default=track_record.DAYS_DEFAULT, maximum=track_record.DAYS_MAX)
    return _track(asked, track_record.summary_parts(asked.snapshot, days=days))


def _track_runs(asked: Asked) -> Plan:
    limit = asked.whole("limit", default=track_record.LIMIT_DEFAULT, maximum=track_record.LIMIT_MAX)
    before = asked.query.get("before")
    if before is not None:
        if len(before) > track_record.CURSOR_MAX_CHARS:
            raise ValueError("before")
        track_record.check_cursor(before)
    return _track(asked, track_record.runs_parts(limit=limit, before=before))


def _track_symbol(asked: Asked) -> Plan:
    days = asked.whole("days", default=track_record.DAYS_DEFAULT, maximum=track_record.DAYS_MAX)
    quote = asked.runtime.settings.quote_currency(asked.snapshot.exchange)
    ordered = track_record.symbol_readings(asked.snapshot, levels.parse_symbol(asked.symbol, default_quote=quote))
    return _track(asked, track_record.symbol_parts(asked.snapshot, ordered, days=days), symbol=True)


_LOADER = ("exchange", "use_cache")
_TRACK = (*_LOADER, "horizon")
# (the FastAPI route's path under the API prefix, the query parameters it reads, its plan; None: /exchanges)
ROUTES: tuple[tuple[str, tuple[str, ...], Callable[[Asked], Plan] | None], ...] = (
    ("/recommendations", (*_LOADER, "horizon", "top_n", "min_score", "label"), _recommendations),
    ("/support-levels" + SYMBOL_PART, _LOADER, _support_levels),
    ("/market-status", _LOADER, _market_status),
    ("/symbols", (*_LOADER, "horizon"), _symbols),
    ("/exchanges", (), None),
    ("/track-record", (*_TRACK, "days"), _track_summary),
    ("/track-record/runs", (*_TRACK, "limit", "before"), _track_runs),
    ("/track-record/symbols" + SYMBOL_PART, (*_TRACK, "days"), _track_symbol),
)
