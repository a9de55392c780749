"""Exceptions the client raises; every one is a ``DantaroError``.

``ApiError`` carries what the API answered: the HTTP status, the error ``code`` and ``message`` of its body
(``{"success": false, "error": {"code": ..., "message": ...}}``, sent as ``application/json`` or, by the pairlist,
``application/problem+json``), the ``Retry-After`` in seconds and the ``X-Request-ID``. Its subclasses name the
cases a caller handles differently: ``AuthenticationError`` (401/403), ``NotFoundError`` (404),
``InvalidRequestError`` (400/422), ``RateLimitedError`` (429), ``UnavailableError`` (503). A body that is not the
API's error shape (a proxy's HTML page) still becomes an ``ApiError``, with code ``http_<status>``.
``TransportError`` means no answer arrived (``RequestTimeoutError`` when a timeout ran out);
``UnexpectedResponseError`` an answer that is not what the API documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from pydantic import ValidationError

from dantaro_client.models import ErrorResponse

MESSAGE_MAX_CHARS = 300  # of a body that is not the API's error shape


class DantaroError(Exception):
    """Base of every error the client raises."""


class ApiError(DantaroError):
    """The API answered with an error status; ``code`` and ``message`` are the ones it sent."""

    def __init__(
        self,
        *,
        status_code: int,
        code: str,
        message: str,
        retry_after_s: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.request_id = request_id


class AuthenticationError(ApiError):
    """401/403: the key is missing, wrong or revoked."""


class NotFoundError(ApiError):
    """404: unknown exchange, symbol or path."""


class InvalidRequestError(ApiError):
    """400/422: a parameter the API refused (``code`` says which rule, e.g. ``unknown_horizon``)."""


class RateLimitedError(ApiError):
    """429: the key's per-minute budget, the client's failed keys or the key's open streams are used up."""


class UnavailableError(ApiError):
    """503: no data yet (``data_not_ready``), stale data refused (``data_stale``), or the server is busy."""


class TransportError(DantaroError):
    """No answer: the connection could not be made or broke."""


class RequestTimeoutError(TransportError):
    """A timeout ran out (connecting, sending, waiting for the answer, or between two stream lines)."""


class UnexpectedResponseError(DantaroError):
    """An answer that is not what the API documents (not JSON, or not the expected model)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitedError,
    503: UnavailableError,
}


def api_error(status_code: int, headers: Mapping[str, str], content: bytes, *, retry_after_s: float | None) -> ApiError:
    """The exception for an error answer: its class by status, its code and message from the body."""
    try:
        detail = ErrorResponse.model_validate_json(content).error
        code, message = detail.code, detail.message
    except ValidationError:
        code = f"http_{status_code}"
        message = content.decode("utf-8", "replace").strip()[:MESSAGE_MAX_CHARS] or _phrase(status_code)
    cls = _BY_STATUS.get(status_code, ApiError)
    request_id = headers.get("x-request-id")
    return cls(status_code=status_code, code=code, message=message, retry_after_s=retry_after_s, request_id=request_id)


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "error"
