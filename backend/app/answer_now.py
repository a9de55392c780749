"""Answers an app gives at once, written by the server's protocol without an ASGI task (``app.http_limits``).

An ``AnswerNow`` looks at a request's scope and returns the whole answer (``Reply``) or None (the ASGI app answers
the request as usual, and counts it). The protocol writes the reply, then calls ``Reply.sent``.

The protocol asks only for a read that is exactly one plain ``GET`` head (``plain_get``): the request line
``GET <target> HTTP/1.1`` with a target of unreserved, sub-delimiter, ``:@/?`` characters (no ``%``, no ``#``), and
header lines ``name: value`` with a token name and a value of visible ASCII (inner spaces and tabs allowed, nothing
around it but the spaces after the colon); no ``Content-Length``, ``Transfer-Encoding``, ``Upgrade`` or ``Expect``,
and ``Connection`` or ``Proxy-Connection`` (which httptools reads alike) only as ``keep-alive``. What it accepts,
httptools parses to the same target and headers, keeping the connection open (``tests/test_answer_now.py`` holds
them to it); anything else (None) goes to uvicorn's parser. The helpers run uvicorn's ``X-Forwarded-*`` step (an
ASGI middleware) on a scope alone: over ``without_app`` it finishes without waiting; ``run_now`` refuses a step that
would wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

_REQUEST_LINE = re.compile(rb"GET (/[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*) HTTP/1\.1")
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)")
_UNUSUAL = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect"})
_CONNECTION = frozenset({b"connection", b"proxy-connection"})  # httptools reads both alike


def plain_get(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """The target and headers (names lower-cased, as uvicorn gives them) of ``data`` when it is exactly one plain
    ``GET`` head (the module docstring); None for anything else."""
    if not data.startswith(b"GET /") or data.find(b"\r\n\r\n") != len(data) - 4:
        return None
    request_line, *lines = data[:-4].split(b"\r\n")
    target = _REQUEST_LINE.fullmatch(request_line)
    if target is None:
        return None
    headers = []
    for line in lines:
        header = _HEADER_LINE.fullmatch(line)
        if header is None:
            return None
        name, value = header[1].lower(), header[2]
        if name in _UNUSUAL or (name in _CONNECTION and value.lower() != b"keep-alive"):
            return None
        headers.append((name, value))
    return target[1], headers


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer given at once: written by the protocol after the server's default headers, then ``sent()``."""

    status: int
    headers: list[tuple[bytes, bytes]]  # with content-length (but for a 304)
    body: bytes
    sent: Callable[[], None]  # called once the answer is written (records the request)


# A request's whole answer at once, from its ASGI scope; None: the ASGI app answers it.
AnswerNow = Callable[[MutableMapping[str, Any]], Reply | None]


async def without_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """An ASGI app that does nothing (what uvicorn's proxy-headers step hands the scope on to)."""
    return None


def run_now(step: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits to its end (``ProxyHeadersMiddleware`` over ``without_app``)."""
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    raise RuntimeError("a step that was to finish at once waited")


async def no_receive() -> Any:
    """ASGI ``receive`` for a step run on a scope alone: never called."""
    raise RuntimeError("an answer given at once reads no body")


async def no_send(message: Any) -> None:
    """ASGI ``send`` for a step run on a scope alone: never called."""
    raise RuntimeError("an answer given at once is written by the protocol")
