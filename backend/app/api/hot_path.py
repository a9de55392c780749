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

Under ``dantaro api`` the server's protocol asks first (``HotPath.answer_now``, ``app.answer_now``) when a read is
one plain GET head, and writes a hit itself, without uvicorn's parser or an ASGI task, when no layer applies (no
gzip asked, no CORS configured); otherwise the ASGI call runs and decides again (only it counts a pass). The plans
per endpoint are in ``app.api.hot_plans``.

A hit, hop by hop: 1. ``HeaderDeadlineProtocol._answered_at_once`` (writes it) or ``HotPath.__call__`` (sends it
through the layers) -> 2. ``HotPath._hit`` (a GET on a served path, its headers; the ASGI call records a pass) -> 3.
``HotPath._answer`` (key, answer, budget, 304 or 200) -> 4. ``Answers.current`` (the answer prepared for this path
and query while its run, staleness, cache state and track-record version hold; on a miss, unless the key's budget
is spent, ``Answers.prepare`` -> the route's plan -> its ``*_body`` -> ``body_template``) -> 5.
``BodyTemplate.render`` (the body at this request's age); ``Hit.sent`` counts and logs it. At most ``MAX_ANSWERS``
answers holding at most ``MAX_ANSWER_BYTES`` (bodies and raw queries) are kept: all are dropped when one more would
pass either, and with the app's runtime; one larger than the budget alone is answered, not kept. The key is the raw
query, so ``top_n=10``, ``top_n=10&`` and ``top_n=10&&`` are three answers of the same bytes, and only the byte
budget bounds what a client asking for many such queries makes the process hold.
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

from app.answer_now import Reply
from app.api import deps
from app.api.auth import ApiPrincipal
from app.api.byte_budget import ByteBudgetMemo
from app.api.deps import ApiRuntime, LoadedSnapshot
from app.api.errors import ApiError
from app.api.hot_plans import MEMORY, ROUTES, SYMBOL_PART, Asked, Plan
from app.api.http_cache import cache_control, etag_for, matches
from app.api.metrics import HOT_PATH_ANSWERED, HOT_PATH_AT_ONCE, HOT_PATH_PASSED
from app.api.middleware import Answer, respond_from_scope, response_layers, send_answer
from app.api.observability import KEY_ID_SCOPE, REQUEST_ID_NAME, record_request, request_id_from, route_template
from app.api.renderers import BodyTemplate, View, body_template, data_age_s, freshness_fields, served_age
from app.api.responses import dump_json
from app.api.routes import catalog
from app.domain import Snapshot

log = structlog.get_logger(__name__)

MAX_ANSWERS = 1024
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # the prepared bodies kept, in bytes (a 74 kB body: about 56 of them)
_JSON = (b"content-type", b"application/json")
_READ = frozenset({b"authorization", b"if-none-match", b"accept-encoding", REQUEST_ID_NAME})  # repeated: FastAPI's
_PASS = frozenset({b"origin", b"content-length", b"transfer-encoding"})  # a CORS request, a body: FastAPI's
_SYMBOL = re.compile(r"[A-Za-z0-9]{1,20}(?:[-_/][A-Za-z0-9]{1,20})?")


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

    def __init__(self, runtime: ApiRuntime, *, max_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.runtime = runtime
        self.interval_s = runtime.settings.schedule_interval_s
        self._stale_after_s = runtime.settings.stale_after_s
        self._prepared = ByteBudgetMemo[tuple[str, bytes], Prepared](max_entries=MAX_ANSWERS, max_bytes=max_bytes)
        self.cors = bool(runtime.settings.cors_origins)  # every answer then passes the CORS layer
        self.layers = response_layers(respond_from_scope, runtime.settings.cors_origins)

    def current(
        self, scope: Scope, route: HotRoute, symbol: str, now: datetime, *, principal: ApiPrincipal
    ) -> tuple[Prepared, Snapshot, float] | None:
        """This request's answer, its run and the data's age (seconds) at ``now``; None when not from memory, or
        when it would have to be prepared for a key whose budget is spent (FastAPI answers the 429, preparing
        nothing)."""
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
            if not _budget_left(self.runtime, principal):
                return None
            prepared = self.prepare(scope, route, symbol, snapshot, variant)
            if prepared is None:
                return None
            # what it holds: its body and its raw query (up to a head's size)
            self._prepared.keep(key, prepared, size_bytes=prepared.template.size_bytes + len(key[1]))
        return prepared, snapshot, age_s

    @property
    def held_bytes(self) -> int:
        """The bytes of the answers kept: bodies (less their ages) and raw queries."""
        return self._prepared.held_bytes

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


@dataclass(frozen=True, slots=True)
class Hit:
    """A request the hot path answers: the answer, the headers after it, and what is recorded once it is sent."""

    answer: Answer
    extra: list[tuple[bytes, bytes]]  # X-Request-ID, last (where the outer middleware puts it)
    layers: ASGIApp | None  # gzip and CORS (``response_layers``) when one of them applies, else None
    runtime: ApiRuntime
    scope: Scope
    route: str
    request_id: str
    started_s: float

    def sent(self, *, at_once: bool = False) -> None:
        """Count and log the request once its answer is sent (``at_once``: written by the server's protocol)."""
        metrics, duration_s = self.runtime.metrics, time.perf_counter() - self.started_s
        metrics.hot_path(HOT_PATH_AT_ONCE if at_once else HOT_PATH_ANSWERED)
        status, request_id = self.answer.status, self.request_id
        record_request(
            metrics, self.scope, route=self.route, request_id=request_id, status=status, duration_s=duration_s
        )

    def reply(self) -> Reply:
        """The answer as the server's protocol writes it (``answer_now``): no layer applies."""
        answer = self.answer
        return Reply(answer.status, [*answer.headers, *self.extra], answer.body, lambda: self.sent(at_once=True))


class HotPath:
    """ASGI middleware answering the data ``GET`` endpoints from memory; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, *, api: FastAPI, prefix: str, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.app = app
        self._api = api
        self._routes, self._prefixes = _routes_of(api, prefix)
        self._max_answer_bytes = max_answer_bytes
        self._answers: Answers | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a hit from memory; pass anything else to the app."""
        hit = self._hit(scope, at_once=False)
        if hit is None:
            await self.app(scope, receive, send)
            return
        await send_answer(hit.answer, scope, receive, send, extra=hit.extra, layers=hit.layers)
        hit.sent()

    def answer_now(self, scope: Scope) -> Reply | None:
        """A hit's answer for the server's protocol to write at once (``app.answer_now``); None: the request goes
        to the ASGI call, which answers it through the layers (gzip, CORS) or passes it on and counts that."""
        hit = self._hit(scope, at_once=True)
        return None if hit is None else hit.reply()

    def _hit(self, scope: Scope, *, at_once: bool) -> Hit | None:
        """This request's hit; None to pass it on (counted, unless ``at_once``: the ASGI call then decides again)."""
        route, symbol = self._route(scope) if scope["type"] == "http" and scope["method"] == "GET" else (None, "")
        runtime: ApiRuntime | None = getattr(self._api.state, "runtime", None)
        if route is None or runtime is None:
            return None
        started_s = time.perf_counter()
        headers, answers = _read_headers(scope["headers"]), self._answers_of(runtime)
        layered = headers is not None and (answers.cors or b"gzip" in headers.get(b"accept-encoding", b""))
        if at_once and layered:
            return None  # the ASGI call answers it through the layers
        try:
            answer = None if headers is None else self._answer(scope, runtime, route, symbol, headers)
        except Exception:  # a bug here must not fail a request FastAPI can answer
            if not at_once:  # (the ASGI call, which follows, meets it again and logs it once)
                log.exception("hot_path_failed", path=scope["path"])
            answer = None
        if answer is None or headers is None:
            if not at_once:
                runtime.metrics.hot_path(HOT_PATH_PASSED)
            return None
        request_id = request_id_from(headers.get(REQUEST_ID_NAME))
        extra = [(REQUEST_ID_NAME, request_id.encode())]
        return Hit(
            answer, extra, answers.layers if layered else None, runtime, scope, route.label, request_id, started_s
        )

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
        found = answers.current(scope, route, symbol, now, principal=principal)
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
            answers = self._answers = Answers(runtime, max_bytes=self._max_answer_bytes)
        return answers

    def held_bytes(self) -> int:
        """The body bytes of the answers prepared and kept in the current runtime."""
        return 0 if self._answers is None else self._answers.held_bytes


def _budget_left(runtime: ApiRuntime, principal: ApiPrincipal) -> bool:
    """Whether the key's budget allows one more request now (``Limiter.peek``: counts nothing)."""
    limit = principal.rate_limit_per_min
    return limit is None or runtime.limiter.peek(principal.key_id, limit_per_min=limit) is None


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
