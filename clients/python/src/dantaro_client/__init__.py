"""Typed Python client of the Dantaro Central API (sync and asyncio, on httpx2), and the webhook signature check.

    from dantaro_client import DantaroClient
    with DantaroClient("https://dantaro.example.com", api_key="dk_...") as client:
        ranked = client.recommendations(top_n=10, horizon="4h")

Every call returns a pydantic model of ``models`` / ``track_models``; errors are ``errors.DantaroError``; 429 and
503 answers are retried per ``retry.RetryPolicy``; GETs are conditional on the last ETag seen. See README.md.
"""

from dantaro_client._version import __version__
from dantaro_client.aio import AsyncDantaroClient, AsyncEventStream
from dantaro_client.client import DantaroClient, EventStream
from dantaro_client.errors import (
    ApiError,
    AuthenticationError,
    DantaroError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RequestTimeoutError,
    TransportError,
    UnavailableError,
    UnexpectedResponseError,
)
from dantaro_client.retry import NO_RETRY, RetryPolicy
from dantaro_client.signatures import SignatureVerificationError, verify_signature
from dantaro_client.sse import ReadyEvent, RunEvent, StreamEvent

__all__ = [
    "NO_RETRY",
    "ApiError",
    "AsyncDantaroClient",
    "AsyncEventStream",
    "AuthenticationError",
    "DantaroClient",
    "DantaroError",
    "EventStream",
    "InvalidRequestError",
    "NotFoundError",
    "RateLimitedError",
    "ReadyEvent",
    "RequestTimeoutError",
    "RetryPolicy",
    "RunEvent",
    "SignatureVerificationError",
    "StreamEvent",
    "TransportError",
    "UnavailableError",
    "UnexpectedResponseError",
    "__version__",
    "verify_signature",
]
