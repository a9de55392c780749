"""The request edge: a pure ASGI middleware that refuses a request before its body is read.

Invariants:
- A body is announced by ``Content-Length`` (> 0) or ``Transfer-Encoding``; a request without either has none and
  passes straight through (one scan of the header list, nothing else).
- A body announced larger than ``max_body_bytes`` gets 413 ``payload_too_large`` before any of it is read. A body
  without a length (chunked) is counted as it is read: once more than ``max_body_bytes`` arrived, the reader gets an
  HTTP 413 error instead of the next chunk, so at most ``max_body_bytes`` plus one chunk is ever held.
- A request with a body to a path under ``protected_prefix`` is authenticated here, before its body is read
  (``deps.authenticate_scope``: 401 without a valid key, 429 for a throttled client or a spent budget); the route
  then finds the principal in the scope and neither checks nor counts it again.
- A response to a request whose body was not read to its end says ``Connection: close``: the server closes the
  connection after it instead of reading (and discarding) a body nobody wants.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import ApiRuntime, authenticate_scope
from app.api.errors import ApiError, error_response

CLOSE = (b"connection", b"close")


def announced_body(headers: list[tuple[bytes, bytes]]) -> tuple[bool, int | None]:
    """Whether the request announces a body, and its ``Content-Length`` when it gives one."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None  # the server already refused a malformed one
        elif name == b"transfer-encoding":
            chunked = True
    return chunked or bool(length), length


def too_large(max_body_bytes: int) -> ApiError:
    """The 413 of a body over the limit."""
    return ApiError(
        status_code=413,
        code="payload_too_large",
        message=f"the request body is larger than {max_body_bytes} bytes; send a smaller body",
    )


class _BodyTooLarge(StarletteHTTPException):
    """Raised to the body's reader; the app's HTTP error handler answers it as a 413 in the JSON shape."""


class _LimitedBody:
    """One request's body: counted while read, refused past the limit, and whether it was read to its end."""

    def __init__(self, receive: Receive, *, max_bytes: int) -> None:
        self._receive = receive
        self._max_bytes = max_bytes
        self.read_bytes = 0
        self.finished = False

    async def receive(self) -> Message:
        """The next message of the body; ``_BodyTooLarge`` once more than ``max_bytes`` arrived."""
        message = await self._receive()
        if message["type"] == "http.request":
            self.read_bytes += len(message.get("body", b""))
            self.finished = not message.get("more_body", False)
            if self.read_bytes > self._max_bytes:
                refusal = too_large(self._max_bytes)
                raise _BodyTooLarge(413, detail=refusal.message)
        return message


class RequestEdge:
    """Bounds request bodies and authenticates requests with a body before reading it."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, protected_prefix: str, runtime: Callable[[], ApiRuntime]
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.protected_prefix = protected_prefix
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request without a body through; refuse or guard one with a body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_body, length = announced_body(scope["headers"])
        if not has_body:
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope, length)
        if refusal is not None:
            headers = {**refusal.headers, "Connection": "close"}
            response = error_response(
                status_code=refusal.status_code, code=refusal.code, message=refusal.message, headers=headers
            )
            await response(scope, receive, send)
            return
        body = _LimitedBody(receive, max_bytes=self.max_body_bytes)

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not body.finished:
                message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        await self.app(scope, body.receive, send_closing)

    async def _refusal(self, scope: Scope, length: int | None) -> ApiError | None:
        """The error that refuses this request before its body is read, or None."""
        if length is not None and length > self.max_body_bytes:
            return too_large(self.max_body_bytes)
        if scope["path"].startswith(self.protected_prefix):
            try:
                await authenticate_scope(scope, self.runtime())
            except ApiError as exc:
                return exc
        return None
