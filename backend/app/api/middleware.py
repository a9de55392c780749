"""Settings-driven HTTP plumbing: the CORS allowlist, switching the OpenAPI docs off, and gzip on request.

Invariants: with no configured origins no CORS headers are ever sent (browsers then refuse cross-origin reads);
allowed requests may send ``Authorization``, ``Content-Type``, ``If-None-Match`` and ``X-Request-ID`` and read
``ETag``, ``Retry-After`` and ``X-Request-ID``. ``SettingsCorsMiddleware`` serves the app built without settings
(``app.main``): it reads the origins from the runtime the lifespan attached, on the first request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
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


def drop_docs_routes(app: FastAPI) -> None:
    """Stop serving /docs, /redoc and /openapi.json."""
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) not in DOCS_PATHS]
    app.openapi_url = app.docs_url = app.redoc_url = None


class SettingsCorsMiddleware:
    """CORS with the origins of the settings the lifespan loaded (for apps created without settings)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Delegate to a CORS middleware built from the runtime's settings once they exist."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            runtime = getattr(scope["app"].state, "runtime", None)
            origins = list(runtime.settings.cors_origins) if runtime is not None else []
            self._inner = CORSMiddleware(self.app, allow_origins=origins, **_CORS_OPTIONS) if origins else self.app
        await self._inner(scope, receive, send)


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
