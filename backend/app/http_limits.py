"""Bounded connections for the API server: a header deadline and size per connection, the server's own error
answers in the API's JSON error shape, and the app's answers given at once (``app.answer_now``). Descriptor
exhaustion: ``app.descriptors``.

Invariants:
- A connection must deliver a complete request head (request line and headers) within ``header_timeout_s`` of
  opening, and again within ``header_timeout_s`` of its first byte after a finished response; otherwise it is closed
  (at most ``SWEEP_EVERY_S`` late: one timer per event loop checks every head still arriving, ``HeadWatch``, instead
  of a timer per request). A connection that sends nothing at all is closed the same way. Uvicorn's own keep-alive
  timeout still closes an idle connection between requests; bodies and responses are not affected (the app bounds
  bodies itself).
- A request head larger than ``max_header_bytes`` (its target plus every header line) is answered 431
  ``headers_too_large`` and the connection closed: at once while it is still arriving (so at most that plus one read,
  256 KiB, of a head is ever held), or instead of the app when it arrived complete in one read (counted exactly when
  the bytes read could exceed the limit, and always for a head pipelined behind a request in progress).
- A read that is exactly one plain ``GET`` head (``app.answer_now.plain_get``) arriving at a request boundary (nothing
  of the connection in progress, queued or partly read; writing not paused; no shutdown; below uvicorn's connection
  cap) is first offered to the app's ``answer_now`` (the API's hot path) with the scope uvicorn would make of it;
  a ``Reply`` is written at once (after the server's ``date``/``server`` headers, as uvicorn writes a response with
  a ``content-length``) without uvicorn's parser or an ASGI task, and the keep-alive timer and head deadline carry
  on as after any response. The client/scheme come first from a trusted proxy's ``X-Forwarded-*`` headers by
  uvicorn's own ``ProxyHeadersMiddleware`` (run on the scope alone). Anything else (None, or an exception, logged
  as ``answer_now_failed``) goes to the parser and the ASGI app as before.
- What the server answers itself is in the JSON error shape (``app.errors.error_document``) with
  ``Connection: close``: a request that is not valid HTTP (uvicorn's "Invalid HTTP request received.") is a 400
  ``bad_request``, a request beyond the connection cap (uvicorn's ``limit_concurrency``) a 503 ``overloaded`` with
  ``Retry-After: 1``.
- A graceful shutdown never closes a connection while its client may be sending a request on it: a request in
  progress is answered with ``Connection: close`` (or, when its response had already started, the connection
  waits like an idle one afterwards); an idle keep-alive connection answers its next request with
  ``Connection: close``, or is closed when no request starts within ``DRAIN_IDLE_S``. Uvicorn's own shutdown closes
  idle connections at once, which resets a request the client has just sent (a failed request on the client's side).
Times are monotonic seconds.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import MutableMapping
from typing import Any, cast

import structlog
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from app.answer_now import AnswerNow, no_receive, no_send, plain_get, run_now, without_app
from app.errors import error_document

log = structlog.get_logger(__name__)

DRAIN_IDLE_S = 1.0  # an idle connection of a stopping server gets this long to start one more request
SWEEP_EVERY_S = 0.25  # how often the request heads still arriving are checked against their deadline
FORWARDED_HEADERS = frozenset({b"x-forwarded-for", b"x-forwarded-proto"})  # what uvicorn's proxy-headers step reads
OVERLOADED_RETRY_AFTER_S = 1


class HeadWatch:
    """The request heads still arriving on one event loop, checked every ``SWEEP_EVERY_S`` by one timer (a timer
    per request cost about 5 µs of a 80 µs request); the timer stops while no head is arriving. It holds no reference
    to its loop (the loop's timer holds it), so ``_WATCHES`` lets a closed loop go."""

    def __init__(self) -> None:
        self._arriving: dict[HeaderDeadlineProtocol, float] = {}  # protocol -> since when (loop seconds)
        self.sweeping = False  # a sweep is scheduled

    def start(self, protocol: HeaderDeadlineProtocol) -> None:
        """A head starts arriving now on ``protocol``'s connection."""
        loop = protocol.loop
        self._arriving[protocol] = loop.time()
        if not self.sweeping:
            self.sweeping = True
            loop.call_later(SWEEP_EVERY_S, self._sweep, loop)

    def stop(self, protocol: HeaderDeadlineProtocol) -> None:
        """The head arrived (or the connection is gone)."""
        self._arriving.pop(protocol, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now_s = loop.time()
        arriving = self._arriving.items()
        late = [protocol for protocol, since_s in arriving if now_s - since_s >= protocol.header_timeout_s]
        for protocol in late:
            del self._arriving[protocol]
        self.sweeping = bool(self._arriving)
        if self.sweeping:  # scheduled before closing the late ones: a failure there cannot stop the sweeps
            loop.call_later(SWEEP_EVERY_S, self._sweep, loop)
        for protocol in late:
            protocol.too_slow()


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HeadWatch] = weakref.WeakKeyDictionary()


def head_watch(loop: asyncio.AbstractEventLoop) -> HeadWatch:
    """The loop's ``HeadWatch``."""
    watch = _WATCHES.get(loop)
    if watch is None:
        watch = _WATCHES[loop] = HeadWatch()
    return watch


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with a deadline for each request head (``header_timeout_s``), writing the answers
    the app gives at once (``answer_now``) without an ASGI task."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 16384
    answer_now: AnswerNow | None = None
    forwarded: ProxyHeadersMiddleware | None = None  # uvicorn's X-Forwarded-* step, over ``without_app``

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Open the connection and start the deadline for its first request head."""
        self._watch = head_watch(self.loop)
        self._head_arriving = False
        self._head_bytes = 0
        self._head_received = 0  # the bytes read while the last head arrived (with whatever followed it in a read)
        self._draining = False
        self._in_message = False  # the parser is inside a request (begun, not complete), whatever the head watch saw
        self._idle_close: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Bytes of a new request start its deadline; a complete head (``on_headers_complete``) stops it. A head
        still incomplete after more than ``max_header_bytes`` is refused (431)."""
        if self._answered_at_once(data):
            return
        if self._between_requests():
            self._arm()
            self._cancel_idle_close()  # a request is arriving: it is answered (with Connection: close when draining)
        if self._head_arriving:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_arriving and self._head_bytes > self.max_header_bytes:
            self._disarm()
            self._answer_and_close(431, code="headers_too_large", message=_too_large(self.max_header_bytes))

    def _answered_at_once(self, data: bytes) -> bool:
        """Answer a read that is one plain GET head (``answer_now.plain_get``) with the app's answer given at once,
        without uvicorn's parser or an ASGI task; False: the read goes to the parser as usual."""
        if self.answer_now is None or not self._at_a_boundary() or len(data) > self.max_header_bytes:
            return False
        head = plain_get(data)
        if head is None:
            return False
        scope = self._plain_get_scope(*head)
        try:
            if self.forwarded is not None and not FORWARDED_HEADERS.isdisjoint(name for name, _ in scope["headers"]):
                run_now(self.forwarded(scope, no_receive, no_send))  # (it changes nothing without these headers)
            reply = self.answer_now(cast(MutableMapping[str, Any], scope))  # the scope as the app sees it
        except Exception:  # the ASGI app answers the request instead
            log.exception("answer_now_failed", path=scope["path"])
            return False
        if reply is None:
            return False
        self._unset_keepalive_if_required()
        self._disarm()
        self.transport.write(self._response_head(reply.status, reply.headers))
        self.transport.write(reply.body)
        try:
            reply.sent()
        except Exception:
            log.exception("answer_now_failed", path=scope["path"])
        self.on_response_complete()
        return True

    def _at_a_boundary(self) -> bool:
        """No request of the connection in progress, queued or partly read, and nothing in the way of answering
        one now (writing paused, a shutdown, uvicorn's connection cap reached, a root path)."""
        limit = self.limit_concurrency
        if self._in_message or not self._between_requests():
            return False
        if self.pipeline or self.flow.write_paused or self._draining or self.transport.is_closing() or self.root_path:
            return False
        return limit is None or (len(self.connections) < limit and len(self.tasks) < limit)

    def _plain_get_scope(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> HTTPScope:
        """The scope uvicorn's ``on_message_begin`` and ``on_headers_complete`` make of a plain GET head."""
        raw_path, _, query = target.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]  # (set once the connection is made, as uvicorn does)
            "root_path": self.root_path,
            "headers": headers,
            "state": self.app_state.copy(),
            "method": "GET",
            "path": raw_path.decode("ascii"),
            "raw_path": raw_path,
            "query_string": query,
        }

    def on_message_begin(self) -> None:
        """The parser starts a request (the head may still arrive over several reads)."""
        self._in_message = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        """The parser ends a request (set first: uvicorn's own returns early once the response is complete)."""
        self._in_message = False
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        """The head arrived in time and within its size."""
        # A head that arrived unarmed (pipelined behind a request in progress) was not measured: count it exactly.
        self._head_received = self._head_bytes if self._head_arriving else self.max_header_bytes
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # the answer says Connection: close; the client opens a new connection

    def send_400_response(self, msg: str) -> None:
        """Uvicorn's answer to bytes that are not HTTP (``msg`` is its plain-text reason), in the JSON shape."""
        message = "the request is not valid HTTP/1.1 (request line, headers or chunked body); nothing was processed"
        self._answer_and_close(400, code="bad_request", message=message)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """Start the app for one request; uvicorn's plain-text 503 beyond ``limit_concurrency`` becomes ours, and a
        head over ``max_header_bytes`` gets the 431 instead of the app."""
        if app is service_unavailable:
            app = overloaded
        elif self._head_received * 5 > self.max_header_bytes * 4 and head_bytes(cycle.scope) > self.max_header_bytes:
            app = headers_too_large(self.max_header_bytes)  # (head_bytes counts at most 5/4 of the bytes read)
        super()._start_asgi_task(cycle, app)

    def _answer_and_close(self, status: int, *, code: str, message: str) -> None:
        if self.transport.is_closing():
            return
        body = error_body(code=code, message=message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        self.transport.write(self._response_head(status, headers) + body)
        self.transport.close()

    def _response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """A response's status line and headers as uvicorn writes them: its default headers (``date``, ``server``)
        first, then ``headers``."""
        lines = [name + b": " + value + b"\r\n" for name, value in (*self.server_state.default_headers, *headers)]
        return b"".join([STATUS_LINE[status], *lines, b"\r\n"])

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        self._cancel_idle_close()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The server stops: finish without closing under a client that may be sending (the module docstring)."""
        self._draining = True
        if self._between_requests():
            self._arm_idle_close()
        elif not self.cycle.response_started:
            self.cycle.keep_alive = False  # its response says Connection: close, then the connection closes
        # else: the response is under way without that header; on_response_complete waits like an idle connection

    def on_response_complete(self) -> None:
        """A response finished: while draining, the connection waits for one more request or ``DRAIN_IDLE_S``."""
        super().on_response_complete()
        if self._draining and not self.transport.is_closing():
            self._arm_idle_close()

    def _arm_idle_close(self) -> None:
        if self._idle_close is None and not self.transport.is_closing():
            self._idle_close = self.loop.call_later(DRAIN_IDLE_S, self._close_if_idle)

    def _cancel_idle_close(self) -> None:
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None

    def _close_if_idle(self) -> None:
        self._idle_close = None
        if self._between_requests() and not self._in_message and not self.transport.is_closing():
            self.transport.close()

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if not self._head_arriving:
            self._head_arriving = True
            self._watch.start(self)

    def _disarm(self) -> None:
        if self._head_arriving:
            self._head_arriving = False
            self._watch.stop(self)

    def too_slow(self) -> None:
        """The head missed its deadline (``HeadWatch``): close the connection unless a request is under way."""
        self._head_arriving = False
        if self._between_requests() and not self.transport.is_closing():
            log.debug("connection_closed_slow_head", client=self.client, timeout_s=self.header_timeout_s)
            self.transport.close()


def protocol_with_deadline(
    header_timeout_s: float,
    *,
    max_header_bytes: int = HeaderDeadlineProtocol.max_header_bytes,
    answer_now: AnswerNow | None = None,
    trusted_proxies: list[str] | None = None,
) -> type[HeaderDeadlineProtocol]:
    """A ``HeaderDeadlineProtocol`` subclass with these limits, the app's ``answer_now`` and the proxies whose
    ``X-Forwarded-*`` headers are trusted (uvicorn's ``forwarded_allow_ips``; None: proxy headers off). Uvicorn
    takes a protocol class."""
    forwarded = None if trusted_proxies is None else ProxyHeadersMiddleware(without_app, trusted_hosts=trusted_proxies)
    attributes = {
        "header_timeout_s": header_timeout_s,
        "max_header_bytes": max_header_bytes,
        "answer_now": None if answer_now is None else staticmethod(answer_now),
        "forwarded": forwarded,
    }
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), attributes)


def head_bytes(scope: HTTPScope) -> int:
    """The size of a request's head as the server parsed it: its target and its header lines."""
    size = len(scope["raw_path"]) + len(scope["query_string"])
    for name, value in scope["headers"]:
        size += len(name) + len(value) + 4  # ": " and CRLF
    return size


def _too_large(max_header_bytes: int) -> str:
    return f"the request line and headers are larger than {max_header_bytes} bytes; send fewer or shorter headers"


def headers_too_large(max_header_bytes: int) -> ASGI3Application:
    """An app answering 431 ``headers_too_large`` (for a complete head over ``max_header_bytes``)."""
    return _json_error(431, code="headers_too_large", message=_too_large(max_header_bytes), headers=[])


def error_body(*, code: str, message: str) -> bytes:
    """The JSON error shape as bytes."""
    return json.dumps(error_document(code=code, message=message), separators=(",", ":")).encode()


def _json_error(status: int, *, code: str, message: str, headers: list[tuple[bytes, bytes]]) -> ASGI3Application:
    """An ASGI app answering every request with this error and ``Connection: close``."""
    body = error_body(code=code, message=message)
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
        (b"connection", b"close"),
    ]

    async def answer(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return answer


# The answer to a request beyond the connection cap (uvicorn's own is plain text).
overloaded = _json_error(
    503,
    code="overloaded",
    message="the server is at its connection limit; retry in a second",
    headers=[(b"retry-after", str(OVERLOADED_RETRY_AFTER_S).encode())],
)
