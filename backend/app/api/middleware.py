"""Settings-driven HTTP plumbing: the CORS allowlist and gzip on request.

Invariants: with no configured origins no CORS headers are ever sent (browsers then refuse cross-origin reads);
allowed requests may send ``Authorization``, ``Content-Type``, ``If-None-Match`` and ``X-Request-ID`` and read
``ETag``, ``Retry-After`` and ``X-Request-ID``; a refused preflight is a 400 ``cors_refused`` in the JSON error shape
(Starlette answers it in plain text) naming what was refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.errors import error_response

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


class GzipWhenAccepted(GZipMiddleware):
    """Starlette's gzip, engaged only for requests that accept gzip (others skip its per-message wrapper)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress when the request's ``Accept-Encoding`` names gzip, else pass straight through."""
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding" and b"gzip" in value:
                    await super().__call__(scope, receive, send)
                    return
        await self.app(scope, receive, send)
