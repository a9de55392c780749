"""``AsyncDantaroClient``: the asyncio client, and ``AsyncEventStream``, the live stream as an async iterator.

The transport only: every call is ``_core.Core.steps`` driven with ``httpx2.AsyncClient.send`` and
``asyncio.sleep``; the stream's lines go through the shared ``sse.SseParser``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar

import httpx2

from dantaro_client._base import ClientBase
from dantaro_client._binding import AsyncRunner
from dantaro_client._core import Call, Reply, Sleep, Step, Steps, translated_errors
from dantaro_client.sse import SseParser, StreamEvent

T = TypeVar("T")


class AsyncDantaroClient(ClientBase[httpx2.AsyncClient], AsyncRunner):
    """The Dantaro Central API on asyncio: the methods of ``DantaroClient``, awaited.

    ``async with AsyncDantaroClient("https://dantaro.example.com", api_key="dk_...") as client:`` or ``aclose()``.
    """

    def _new_http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient()

    async def _run(self, call: Call[T]) -> T:
        return await drive(self._http, self._core.steps(call))

    def _stream(self, call: Call[httpx2.Response]) -> AsyncEventStream:
        return AsyncEventStream(lambda: self._run(call))

    async def aclose(self) -> None:
        """Close the connections (unless the httpx2 client was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def drive(http: httpx2.AsyncClient, steps: Steps[T]) -> T:
    """Run a call's steps to its result on the event loop."""
    reply: Reply = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = await _perform(http, step)


async def _perform(http: httpx2.AsyncClient, step: Step) -> Reply:
    if isinstance(step, Sleep):
        await asyncio.sleep(step.seconds)
        return None
    try:
        response = await http.send(step.request, stream=step.stream)
        if step.stream and response.status_code != 200:  # an error before the stream: read it, free the connection
            try:
                await response.aread()
            finally:
                await response.aclose()
    except httpx2.RequestError as exc:
        return exc
    return response


class AsyncEventStream:
    """The live stream's typed events, for ``async for`` (see ``client.EventStream``; close with ``aclose()`` or
    ``async with``)."""

    def __init__(self, open_stream: Callable[[], Awaitable[httpx2.Response]]) -> None:
        self._open_stream = open_stream
        self._response: httpx2.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._parser = SseParser()
        self._closed = False

    @property
    def last_event_id(self) -> str | None:
        """The ``id`` of the last event received."""
        return self._parser.last_event_id

    async def _start(self) -> AsyncIterator[str]:
        if self._lines is None:
            self._response = await self._open_stream()
            self._lines = self._response.aiter_lines()
        return self._lines

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._closed:
            raise StopAsyncIteration
        lines = await self._start()
        with translated_errors():
            async for line in lines:
                event = self._parser.feed(line)
                if event is not None:
                    return event
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Close the connection (idempotent); the iteration ends."""
        self._closed = True
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
