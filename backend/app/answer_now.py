"""Answers an app gives at once, written by the server's protocol without an ASGI task (``app.http_limits``).

An ``AnswerNow`` looks at a request's scope as its head completes and returns the whole answer (``Reply``) or None
(the ASGI app answers the request as usual). The protocol writes the reply, then calls ``Reply.sent``. The helpers
here run uvicorn's ``X-Forwarded-*`` step (an ASGI middleware) on a scope alone: over ``without_app`` it finishes
without waiting, and ``run_now`` refuses a step that would wait.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer given at once: written by the protocol after the server's default headers, then ``sent()``."""

    status: int
    headers: list[tuple[bytes, bytes]]  # with content-length (but for a 304)
    body: bytes
    sent: Callable[[], None]  # called once the answer is written (records the request)


AnswerNow = Callable[
    [MutableMapping[str, Any]], Reply | None
]  # a request's whole answer at once, or None: the ASGI app answers it


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
