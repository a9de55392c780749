"""Settings-driven HTTP plumbing: the CORS allowlist and gzip on request.

Invariants: with no configured origins no CORS headers are ever sent (browsers then refuse cross-origin reads);
allowed requests may send ``Authorization``, ``Content-Type``, ``If-None-Match`` and ``X-Request-ID`` and read
``ETag``, ``Retry-After`` and ``X-Request-ID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Receive, Scope, Send

_CORS_OPTIONS: dict[str, Any] = {
    "allow_methods": ["GET", "POST", "OPTIONS"],
    "allow_headers": ["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
    "expose_headers": ["ETag", "Retry-After", "X-Request-ID"],
    "max_age": 600,
}


def add_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Allow cross-origin requests from exactly ``origins`` (nothing when empty)."""
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(origins), **_CORS_OPTIONS)


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
