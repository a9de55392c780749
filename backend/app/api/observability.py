"""Per-request observability: a request id, one ``request`` log event and the request metrics.

Invariants:
- Every HTTP response carries ``X-Request-ID``: the caller's own when it is a sane token (letters, digits,
  ``._:-``, at most 64 characters), else a new random hex id. It is bound in structlog's contextvars for the
  request, so every log line written while handling it (threadpool work included) carries ``request_id``.
- One ``request`` event per request with request_id, client (the caller's address: the socket peer, or the
  ``X-Forwarded-For`` client when a trusted proxy sent it, ``DANTARO_FORWARDED_ALLOW_IPS``), key_id (the key's public
  id, set by authentication; never the secret), route (the template, or ``unmatched``), method, status, latency_ms.
- A request whose handler raised is counted and logged with status 500, one cancelled before its response
  started (client gone) with 499; unusual methods are labelled ``other``. The work per request is a few dict
  lookups, two metric updates and one log call.
"""

from __future__ import annotations

import asyncio
import re
import time
from random import getrandbits

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.metrics import UNMATCHED_ROUTE, ApiMetrics
from app.prometheus import BoundChildren

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
KEY_ID_SCOPE = "dantaro.key_id"  # scope key where authentication leaves the caller's key id
CLIENT_CLOSED = 499  # status recorded for a request cancelled before its response started (nginx's convention)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode()  # as ASGI spells header names
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new random id."""
    for name, value in headers:
        if name == REQUEST_ID_NAME:
            return request_id_from(value)
    return request_id_from(None)


def request_id_from(value: bytes | None) -> str:
    """The request id for the (first) ``X-Request-ID`` header value ``value`` (None: absent)."""
    if value is not None:
        text = value.decode("latin-1")
        if _SANE_REQUEST_ID.fullmatch(text):
            return text
    return f"{getrandbits(128):032x}"  # 32 hex digits: unique, not secret (a tenth of os.urandom's cost)


def record_request(
    metrics: ApiMetrics, scope: Scope, *, route: str, request_id: str, status: int, duration_s: float
) -> None:
    """Count one finished request and write its ``request`` event (the middleware's and the hot path's)."""
    method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"  # labels stay bounded
    metrics.observe_request(route=route, method=method, status=status, duration_s=duration_s)
    client = scope.get("client")
    log.info(
        "request",
        request_id=request_id,
        client=client[0] if client else None,
        key_id=scope.get(KEY_ID_SCOPE),
        route=route,
        method=method,
        status=status,
        latency_ms=round(duration_s * 1000, 3),
    )


_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def route_template(path: str) -> str:
    """The metric label of a route path: ``/support-levels/{symbol:path}`` -> ``/support-levels/{symbol}``."""
    return _CONVERTER.sub(r"{\1}", path)


class RequestObservability:
    """ASGI middleware: request id header and contextvar, the ``request`` log event, request metrics."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates = BoundChildren[str, str](route_template)  # the regex runs once per route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request with its id bound; record its outcome whatever happens."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        header = (REQUEST_ID_NAME, request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:  # the client went away: not a server error
            status = CLIENT_CLOSED if status == 500 else status
            raise
        finally:
            self._record(scope, request_id=request_id, status=status, duration_s=time.perf_counter() - started_s)
            structlog.contextvars.reset_contextvars(**tokens)

    def _record(self, scope: Scope, *, request_id: str, status: int, duration_s: float) -> None:
        path = getattr(scope.get("route"), "path", None)
        route = self._templates[path] if isinstance(path, str) else UNMATCHED_ROUTE
        record_request(self.metrics, scope, route=route, request_id=request_id, status=status, duration_s=duration_s)
