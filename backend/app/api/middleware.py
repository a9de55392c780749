"""Settings-driven HTTP plumbing: the CORS allowlist and gzip on request.

Invariants: with no configured origins no CORS headers are ever sent (browsers then refuse cross-origin reads);
allowed requests may send ``Authorization``, ``Content-Type``, ``If-None-Match`` and ``X-Request-ID`` and read
``ETag``, ``Retry-After`` and ``X-Request-ID``; a refused preflight is a 400 ``cors_refused`` in the JSON error shape
(Starlette answers it in plain text) naming what was refused. A body of at least ``GZIP_MINIMUM_BYTES`` is gzipped
when the request's ``Accept-Encoding`` lists ``gzip`` (or ``x-gzip``) with a weight above zero (``gzip;q=0`` refuses
it; ``*`` alone does not ask for it); ``response_layers`` applies the same gzip and CORS to the hot path's answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipResponder
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

GZIP_MINIMUM_BYTES = 1024
GZIP_LEVEL = 9
_GZIP_NAMES = frozenset({b"gzip", b"x-gzip"})
ANSWER_SCOPE = "dantaro.answer"  # the answer ``respond_from_scope`` sends inside ``response_layers``
_CORS_OPTIONS: dict[str, Any] = {
    "allow_methods": ["GET", "POST", "OPTIONS"],
    "allow_headers": ["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
    "expose_headers": ["ETag", "Retry-After", "X-Request-ID"],
    "max_age": 600,
}


def add_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Allow cross-origin requests from exactly ``origins`` (nothing when empty)."""
    if origins:
        app.add_middleware(JsonCors, allow_origins=list(origins), **_CORS_OPTIONS)


_BODY_HEADERS = frozenset({"content-length", "content-type"})


class JsonCors(CORSMiddleware):
    """Starlette's CORS, with refused preflights answered in the API's JSON error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer; a refusal (400, ``Disallowed CORS origin, method``) as ``cors_refused``."""
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")  # e.g. "origin, method"
        kept = {name: value for name, value in response.headers.items() if name not in _BODY_HEADERS}
        message = (
            f"CORS preflight refused (not allowed: {refused}); cross-origin requests are accepted only from the "
            f"configured origins, with the methods {', '.join(_CORS_OPTIONS['allow_methods'])} and the headers "
            f"{', '.join(_CORS_OPTIONS['allow_headers'])}"
        )
        return error_response(status_code=400, code="cors_refused", message=message, headers=kept)


def response_layers(app: ASGIApp, origins: Sequence[str]) -> ASGIApp:
    """``app`` inside the layers ``create_app`` puts around every route: gzip on request, then CORS (when
    ``origins``), so an answer made outside the stack (the hot path) leaves it as the routes' answers do."""
    layered: ASGIApp = GzipWhenAccepted(app)
    return JsonCors(layered, allow_origins=list(origins), **_CORS_OPTIONS) if origins else layered


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether an ``Accept-Encoding`` value lists gzip with a non-zero weight (``gzip;q=0`` does not)."""
    if b"gzip" not in accept_encoding:
        return False
    for item in accept_encoding.split(b","):
        coding, _, parameters = item.partition(b";")
        if coding.strip().lower() in _GZIP_NAMES:
            return _weight(parameters) > 0
    return False


def _weight(parameters: bytes) -> float:
    """The ``q`` of a coding's parameters (1 when absent, 0 when malformed: identity is always acceptable)."""
    for parameter in parameters.split(b";"):
        name, _, value = parameter.partition(b"=")
        if name.strip().lower() == b"q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


class GzipWhenAccepted:
    """Starlette's gzip, engaged only for requests that accept gzip (others skip its per-message wrapper)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress when the request's ``Accept-Encoding`` asks for gzip, else pass straight through."""
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding" and accepts_gzip(value):
                    await GZipResponder(self.app, GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole response made outside the stack: status, headers in order, body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""


async def send_answer(
    answer: Answer,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    extra: list[tuple[bytes, bytes]],
    layers: ASGIApp | None,
) -> None:
    """Send ``answer`` through ``layers`` (``response_layers``; None when none of them applies) with the ``extra``
    headers last, where the outer middleware (``X-Request-ID``) puts them."""
    if layers is None:
        await send({"type": "http.response.start", "status": answer.status, "headers": [*answer.headers, *extra]})
        await send({"type": "http.response.body", "body": answer.body})
        return

    async def send_with_extra(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], *extra]}
        await send(message)

    scope[ANSWER_SCOPE] = answer
    await layers(scope, receive, send_with_extra)


async def respond_from_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app inside ``response_layers`` that sends the ``Answer`` ``send_answer`` left in the scope."""
    answer: Answer = scope[ANSWER_SCOPE]
    await send({"type": "http.response.start", "status": answer.status, "headers": list(answer.headers)})
    await send({"type": "http.response.body", "body": answer.body})
