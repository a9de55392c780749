"""One JSON error shape for every 4xx and 5xx: ``{"success": false, "error": {"code": ..., "message": ...}}``.

Invariants: messages say what was wrong and what is allowed; a 500 never carries a stack trace or internal
detail (the exception is logged with structlog instead); HTTP semantics headers (``WWW-Authenticate``,
``Retry-After``, ``Allow``) are kept. A message echoes at most a short excerpt of any input (``app.errors.excerpt``:
parameter names, values, paths) and a 422 describes at most ``MAX_DESCRIBED_ERRORS`` problems (then how many more),
so an error stays small whatever was sent. The body is ``application/json``, except for endpoints marked with
``errors_as(media_type)``, whose errors (authentication, validation and their own alike) carry the same body under
that media type (the freqtrade pairlist: ``routes/pairlist.py`` says why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.responses import OrjsonResponse
from app.errors import error_document, excerpt

log = structlog.get_logger(__name__)

MAX_DESCRIBED_ERRORS = 3
_BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API reports to the caller as-is, with a stable machine-readable ``code``."""

    def __init__(self, *, status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


PROBLEM_JSON = "application/problem+json"  # RFC 9457's media type for HTTP API errors
_ERROR_MEDIA_TYPE = "__dantaro_error_media_type__"
F = TypeVar("F", bound=Callable[..., Any])


def errors_as(media_type: str) -> Callable[[F], F]:
    """Mark an endpoint whose error responses use ``media_type`` instead of ``application/json``."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ERROR_MEDIA_TYPE, media_type)
        return endpoint

    return mark


def error_media_type(scope: Mapping[str, Any]) -> str | None:
    """The media type the matched endpoint's errors use (None: ``application/json``)."""
    return getattr(scope.get("endpoint"), _ERROR_MEDIA_TYPE, None)


def error_response(
    *,
    status_code: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    media_type: str | None = None,
) -> OrjsonResponse:
    """The error body every failing request gets."""
    body = error_document(code=code, message=message)
    return OrjsonResponse(body, status_code=status_code, headers=dict(headers or {}), media_type=media_type)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(
        status_code=exc.status_code,
        code=exc.code,
        message=exc.message,
        headers=exc.headers,
        media_type=error_media_type(request.scope),
    )


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    phrase = _phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    if exc.status_code == 404 and detail == phrase:
        detail = _no_route(request.method, request.url.path)
    code = _HTTP_CODES.get(exc.status_code, "server_error" if exc.status_code >= 500 else "http_error")
    media_type = error_media_type(request.scope)
    return error_response(
        status_code=exc.status_code, code=code, message=detail, headers=exc.headers, media_type=media_type
    )


def _no_route(method: str, path: str) -> str:
    hint = " (paths take no trailing slash)" if len(path) > 1 and path.endswith("/") else ""
    return f"no route for {excerpt(method, max_chars=16)} {excerpt(path)}{hint}; see /docs for the API"


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    messages = [_describe(error, request) for error in errors[:MAX_DESCRIBED_ERRORS]]
    if len(errors) > MAX_DESCRIBED_ERRORS:
        messages.append(f"and {len(errors) - MAX_DESCRIBED_ERRORS} more problems")
    message = "; ".join(messages) or "invalid request"
    return error_response(
        status_code=422, code="invalid_request", message=message, media_type=error_media_type(request.scope)
    )


def _describe(error: Mapping[str, Any], request: Request) -> str:
    """One problem in words: where (a parameter's or body field's name, shortened) and the rule it broke; never
    the value sent (pydantic's ``input``)."""
    loc: Sequence[Any] = error.get("loc", ())
    if error.get("type") == "json_invalid":
        reason = excerpt(str(error.get("ctx", {}).get("error", "malformed")))
        return f"the body is not valid JSON ({reason} at character {loc[-1] if loc else 0})"
    name = _field_path(loc[1:] if len(loc) > 1 else loc)
    if error.get("type") in _BOUND_ERRORS and loc:
        low, high = _declared_bounds(request, str(loc[-1]))
        if low is not None and high is not None:
            return f"{name} must be between {low} and {high}"
    where = f"{loc[0]} parameter " if len(loc) > 1 else ""
    return f"{where}{name}: {excerpt(str(error.get('msg', 'invalid value')), max_chars=200)}"


def _field_path(parts: Sequence[Any]) -> str:
    """``symbols[3]`` for the loc parts ``("symbols", 3)``, shortened to an excerpt; ``request`` when empty."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".")
    return excerpt(text) if text else "request"


def _declared_bounds(request: Request, name: str) -> tuple[Any, Any]:
    """The inclusive minimum and maximum the matched route declares for parameter ``name``."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    field = _find_param(dependant, name) if isinstance(dependant, Dependant) else None
    low = high = None
    for constraint in getattr(getattr(field, "field_info", None), "metadata", ()):
        low = getattr(constraint, "ge", low)
        high = getattr(constraint, "le", high)
    return low, high


def _find_param(dependant: Dependant, name: str) -> Any:
    for field in (*dependant.query_params, *dependant.path_params, *dependant.header_params):
        if name in (field.alias, field.name):
            return field
    for sub in dependant.dependencies:
        found = _find_param(sub, name)
        if found is not None:
            return found
    return None


class UnhandledErrorMiddleware:
    """Turns any exception that escapes a route into a logged, generic 500 in the standard shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; on an unhandled exception log it and answer 500 if nothing was sent yet."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled_error", method=scope.get("method"), path=scope.get("path"))
            if started:
                raise
            response = error_response(
                status_code=500,
                code="internal_error",
                message="internal error; the incident was logged",
                media_type=error_media_type(scope),
            )
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers and the catch-all middleware on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(UnhandledErrorMiddleware)
