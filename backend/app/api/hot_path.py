"""The hot path: ``GET`` requests for data this process already holds, answered before FastAPI.

A plain ASGI layer, the app's front (``app.DantaroApi``), for the data endpoints: recommendations, support levels,
market status, symbols, exchanges and the track record. A request it can answer from memory (a key in the verified-key
table, the exchange's in-process copy of its run, the track record's per-process body) gets the bytes the FastAPI
route sends: the routes' own body builders (``*_body``) rendered once per run and query into a ``BodyTemplate`` (the
data's age is the only per-request value), the same ETag, ``Cache-Control``, 304, gzip and CORS layers
(``middleware.response_layers``), key check and budget (``deps.known_principal``, ``deps.admit``), metrics, request
id and request log (``observability.record_request``). Anything else goes to FastAPI unchanged, the one definition of
the contract, of every error and of the OpenAPI document: another path or method; a parameter the route does not read,
a repeated one or one not in plain form (``top_n=10``, never ``top_n=+10``); ``use_cache=false``; an unknown
exchange, symbol or horizon; a key not verified yet; no in-process copy; a body, an ``Origin`` or a repeated header;
a spent budget (FastAPI's 429); an exception (logged as ``hot_path_failed``). Passing a request on leaves nothing
counted here. ``tests/api/test_hot_path_differential.py`` holds both to the same bytes.

A hit, hop by hop: 1. ``HotPath.__call__`` (a GET on a served path, else FastAPI; sends, records) -> 2.
``HotPath._answer`` (key, answer, budget, 304 or 200) -> 3. ``Answers.current`` (the answer prepared for this path and
query while its run, staleness, cache state and track-record version hold; on a miss ``Answers.prepare`` -> the
route's plan -> its ``*_body`` -> ``body_template``) -> 4. ``BodyTemplate.render`` (the body at this request's age).
At most ``MAX_ANSWERS`` answers are kept (all dropped when full, and with the app's runtime).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

import structlog
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import deps
from app.api.auth import ApiPrincipal
from app.api.deps import ApiRuntime, LoadedSnapshot
from app.api.errors import ApiError
from app.api.horizons import pick_horizon
from app.api.http_cache import cache_control, etag_for, matches
from app.api.middleware import Answer, respond_from_scope, response_layers, send_answer
from app.api.observability import KEY_ID_SCOPE, REQUEST_ID_NAME, record_request, request_id_from, route_template
from app.api.renderers import BodyTemplate, View, body_template, data_age_s, freshness_fields, served_age
from app.api.responses import dump_json
from app.api.routes import catalog, levels, market, recommendations, track_record
from app.domain import Label, Snapshot

log = structlog.get_logger(__name__)

MAX_ANSWERS = 1024
MEMORY = "memory"  # the data source of every answer from the in-process copy
SYMBOL_PART = "/{symbol:path}"
_JSON = (b"content-type", b"application/json")
_READ = frozenset({b"authorization", b"if-none-match", b"accept-encoding", REQUEST_ID_NAME})  # repeated: FastAPI's
_PASS = frozenset({b"origin", b"content-length", b"transfer-encoding"})  # a CORS request, a body: FastAPI's
_WHOLE = re.compile(r"[1-9][0-9]{0,5}")
_FRACTION = re.compile(r"[01](?:\.[0-9]{1,12})?")
_SYMBOL = re.compile(r"[A-Za-z0-9]{1,20}(?:[-_/][A-Za-z0-9]{1,20})?")


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


@dataclass(frozen=True, slots=True)
class HotRoute:
    """One FastAPI route the hot path answers."""

    label: str  # the route's metric label (its template)
    parameters: frozenset[str]
    plan: Callable[[Asked], Plan] | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """An answer prepared for one path and query, valid while its run, staleness, cache state and version hold."""

    exchange: str
    variant: tuple[str, bool, str]  # (run_id, stale, cache status) it was rendered for
    version: str | None
    etag: str
    template: BodyTemplate


class Answers:
    """The answers prepared in one app runtime, keyed by (path, raw query)."""

    def __init__(self, runtime: ApiRuntime) -> None:
        self.runtime = runtime
        self.interval_s = runtime.settings.schedule_interval_s
        self._stale_after_s = runtime.settings.stale_after_s
        self._prepared: dict[tuple[str, bytes], Prepared] = {}
        self.cors = bool(runtime.settings.cors_origins)  # every answer then passes the CORS layer
        self.layers = response_layers(respond_from_scope, runtime.settings.cors_origins)

    def current(
        self, scope: Scope, route: HotRoute, symbol: str, now: datetime
    ) -> tuple[Prepared, Snapshot, float] | None:
        """This request's answer, its run and the data's age (seconds) at ``now``; None when not from memory."""
        key = (scope["path"], scope["query_string"])
        prepared = self._prepared.get(key)
        exchange = _exchange(self.runtime, scope) if prepared is None else prepared.exchange
        reader = self.runtime.reader
        found = None if exchange is None else reader.peek(exchange) or reader.serve_stale(exchange)
        if found is None:
            return None
        snapshot = found[0]
        age_s = data_age_s(snapshot, now)
        variant = (snapshot.run_id, age_s > self._stale_after_s, reader.cache_status())
        if prepared is None or prepared.variant != variant or not self._same_version(prepared):
            prepared = self.prepare(scope, route, symbol, snapshot, variant)
            if prepared is None:
                return None
            if len(self._prepared) >= MAX_ANSWERS:
                self._prepared.clear()
            self._prepared[key] = prepared
        return prepared, snapshot, age_s

    def _same_version(self, prepared: Prepared) -> bool:
        store = self.runtime.track_record
        if prepared.version is None:
            return True
        return store is not None and store.known_version(prepared.exchange) == prepared.version

    def prepare(
        self, scope: Scope, route: HotRoute, symbol: str, snapshot: Snapshot, variant: tuple[str, bool, str]
    ) -> Prepared | None:
        """Render this request's answer from ``snapshot``; None when FastAPI must answer it."""
        query = _query(scope["query_string"], route.parameters)
        if query is None or route.plan is None:
            return None
        try:
            plan = route.plan(Asked(self.runtime, Request(scope), snapshot, query, symbol))
            stale = variant[1]

            def build(age_seconds: float) -> View:
                fields = freshness_fields(snapshot, data_source=MEMORY, age_seconds=age_seconds, stale=stale)
                return plan.build(LoadedSnapshot(snapshot, MEMORY, fields, {}))

            template = body_template(build)
        except (ApiError, ValueError):  # the route answers an error, or the body cannot be a template
            return None
        return Prepared(snapshot.exchange, variant, plan.version, plan.etag or etag_for(snapshot, scope), template)


def _exchange(runtime: ApiRuntime, scope: Scope) -> str | None:
    """The exchange a new request asks for, as ``snapshot_loader`` reads it; None for ``use_cache=false``/errors."""
    try:
        exchange, use_cache = deps.loader_parameters(Request(scope))
        return deps.resolve_exchange(runtime.settings, exchange) if use_cache else None
    except ApiError:
        return None


def _query(query_string: bytes, parameters: frozenset[str]) -> dict[str, str] | None:
    """The query parameters (parsed as Starlette does); None when one is unknown to the route or repeated."""
    if not query_string:
        return {}
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    query = dict(pairs)
    return query if len(query) == len(pairs) and query.keys() <= parameters else None


def _read_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes] | None:
    """The headers the hot path reads, by name; None when the request has an unusual or a repeated one."""
    found: dict[bytes, bytes] = {}
    for name, value in raw:
        if name in _READ:
            if name in found:
                return None
            found[name] = value
        elif name in _PASS:
            return None
    return found


class HotPath:
    """ASGI middleware answering the data ``GET`` endpoints from memory; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, *, api: FastAPI, prefix: str) -> None:
        self.app = app
        self._api = api
        self._routes, self._prefixes = _routes_of(api, prefix)
        self._answers: Answers | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a hit from memory; pass anything else to the app."""
        route, symbol = self._route(scope) if scope["type"] == "http" and scope["method"] == "GET" else (None, "")
        runtime: ApiRuntime | None = getattr(self._api.state, "runtime", None)
        if route is None or runtime is None:
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        headers = _read_headers(scope["headers"])
        try:
            answer = None if headers is None else self._answer(scope, runtime, route, symbol, headers)
        except Exception:  # a bug here must not fail a request FastAPI can answer
            log.exception("hot_path_failed", path=scope["path"])
            answer = None
        if answer is None or headers is None:
            runtime.metrics.hot_path(answered=False)
            await self.app(scope, receive, send)
            return
        request_id, answers = request_id_from(headers.get(REQUEST_ID_NAME)), self._answers_of(runtime)
        layered = answers.cors or b"gzip" in headers.get(b"accept-encoding", b"")
        await send_answer(
            answer,
            scope,
            receive,
            send,
            extra=[(REQUEST_ID_NAME, request_id.encode())],
            layers=answers.layers if layered else None,
        )
        metrics, status, duration_s = runtime.metrics, answer.status, time.perf_counter() - started_s
        metrics.hot_path(answered=True)
        record_request(metrics, scope, route=route.label, request_id=request_id, status=status, duration_s=duration_s)

    def _route(self, scope: Scope) -> tuple[HotRoute | None, str]:
        """The hot route of the request's path and its symbol; None under a root path (FastAPI strips it)."""
        path: str = scope["path"]
        if scope.get("root_path"):
            return None, ""
        route = self._routes.get(path)
        if route is not None:
            return route, ""
        for prefix, with_symbol in self._prefixes:
            if path.startswith(prefix) and _SYMBOL.fullmatch(path, len(prefix)):
                return with_symbol, path[len(prefix) :]
        return None, ""

    def _answer(
        self, scope: Scope, runtime: ApiRuntime, route: HotRoute, symbol: str, headers: dict[bytes, bytes]
    ) -> Answer | None:
        """The answer to a request with a known key whose data is in memory; None to pass it to FastAPI."""
        authorization = headers.get(b"authorization")
        secret = None if authorization is None else deps.bearer_secret(authorization.decode("latin-1"))
        principal = None if secret is None else deps.known_principal(runtime.keys, secret)
        if principal is None:
            return None
        answers, now = self._answers_of(runtime), runtime.clock()
        if route.plan is None:
            answer = _exchanges(runtime, now)
            return answer if answer is not None and _admitted(scope, runtime, principal) else None
        found = answers.current(scope, route, symbol, now)
        if found is None:
            return None
        prepared, snapshot, age_s = found
        max_age = cache_control(snapshot, interval_s=answers.interval_s, now=now)
        cached = [(b"etag", prepared.etag.encode("latin-1")), (b"cache-control", max_age.encode("latin-1"))]
        if_none_match = headers.get(b"if-none-match")
        if if_none_match is not None and matches(if_none_match.decode("latin-1"), prepared.etag):
            answer = Answer(304, cached)
        else:
            answer = _json(cached, prepared.template.render(served_age(age_s)))
        if not _admitted(scope, runtime, principal):  # the last step: a request passed on was not counted here
            return None
        runtime.metrics.observe_read(
            exchange=prepared.exchange, tier=MEMORY, generated_at=snapshot.generated_at, fallback=None
        )
        return answer

    def _answers_of(self, runtime: ApiRuntime) -> Answers:
        answers = self._answers
        if answers is None or answers.runtime is not runtime:  # a new lifespan keeps nothing prepared before it
            answers = self._answers = Answers(runtime)
        return answers


def _admitted(scope: Scope, runtime: ApiRuntime, principal: ApiPrincipal) -> bool:
    """Count the request against the key's budget (``deps.admit``); False when it is spent (FastAPI's 429)."""
    if deps.admit(runtime, principal) is not None:
        return False
    scope[KEY_ID_SCOPE] = principal.key_id
    return True


def _exchanges(runtime: ApiRuntime, now: datetime) -> Answer | None:
    """``GET /exchanges`` rendered at ``now``, when every exchange has a fresh in-process copy."""
    views = catalog.exchanges_view(runtime.reader, runtime.settings, now=now, peek_only=True)
    if views is None:
        return None
    first = [(name.lower().encode(), value.encode()) for name, value in catalog.EXCHANGES_HEADERS.items()]
    return _json(first, dump_json(catalog.exchanges_body(runtime.settings, views)))


def _json(first: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    """A 200 with the headers Starlette's ``JSONResponse`` sends after ``first``."""
    return Answer(200, [*first, (b"content-length", b"%d" % len(body)), _JSON], body)


def _routes_of(api: FastAPI, prefix: str) -> tuple[dict[str, HotRoute], list[tuple[str, HotRoute]]]:
    """The hot routes by path, and the ``{symbol:path}`` ones by prefix; each must be a GET route of ``api``."""
    served = {route.path for route in api.routes if isinstance(route, APIRoute) and "GET" in (route.methods or ())}
    exact: dict[str, HotRoute] = {}
    prefixes: list[tuple[str, HotRoute]] = []
    for path, parameters, plan in ROUTES:
        if prefix + path not in served:
            raise ValueError(f"the hot path serves {prefix + path}, which is not a GET route of the app")
        route = HotRoute(route_template(prefix + path), frozenset(parameters), plan)
        if path.endswith(SYMBOL_PART):
            prefixes.append((prefix + path.removesuffix(SYMBOL_PART) + "/", route))
        else:
            exact[prefix + path] = route
    return exact, prefixes
