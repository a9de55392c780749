"""``DantaroClient``: the blocking client, and ``EventStream``, the live stream as an iterator.

The transport only: every call is ``_core.Core.steps`` driven with ``httpx2.Client.send`` and ``time.sleep``; the
stream's lines go through the shared ``sse.SseParser``. Thread-safe as ``httpx2.Client`` is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self, TypeVar

import httpx2

from dantaro_client._base import ClientBase
from dantaro_client._binding import SyncRunner
from dantaro_client._core import Call, Reply, Sleep, Step, Steps, translated_errors
from dantaro_client.sse import SseParser, StreamEvent

T = TypeVar("T")


class DantaroClient(ClientBase[httpx2.Client], SyncRunner):
    """The Dantaro Central API, blocking: one method per endpoint, each returning its typed model.

    ``DantaroClient("https://dantaro.example.com", api_key="dk_...")``; use it as a context manager or call
    ``close()``. Options: ``ClientBase.__init__``; retries: ``retry.RetryPolicy``; errors: ``errors``.
    """

    def _new_http(self) -> httpx2.Client:
        return httpx2.Client()

    def _run(self, call: Call[T]) -> T:
        return drive(self._http, self._core.steps(call))

    def _stream(self, call: Call[httpx2.Response]) -> EventStream:
        return EventStream(lambda: self._run(call))

    def close(self) -> None:
        """Close the connections (unless the httpx2 client was passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drive(http: httpx2.Client, steps: Steps[T]) -> T:
    """Run a call's steps to its result, blocking."""
    reply: Reply = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = _perform(http, step)


def _perform(http: httpx2.Client, step: Step) -> Reply:
    if isinstance(step, Sleep):
        time.sleep(step.seconds)
        return None
    try:
        response = http.send(step.request, stream=step.stream)
        if step.stream and response.status_code != 200:  # an error before the stream: read it, free the connection
            try:
                response.read()
            finally:
                response.close()
    except httpx2.RequestError as exc:
        return exc
    return response


class EventStream:
    """The live stream's typed events (``sse.ReadyEvent`` first, then ``sse.RunEvent`` per new run).

    Opens on ``with`` or the first ``next()`` (errors such as ``AuthenticationError`` are raised there), ends when
    the server closes the stream, and must be closed (``with``, ``close()``) when left early. ``last_event_id``
    resumes after the last event received: ``client.stream(last_event_id=events.last_event_id)``.
    """

    def __init__(self, open_stream: Callable[[], httpx2.Response]) -> None:
        self._open_stream = open_stream
        self._response: httpx2.Response | None = None
        self._lines: Iterator[str] | None = None
        self._parser = SseParser()
        self._closed = False

    @property
    def last_event_id(self) -> str | None:
        """The ``id`` of the last event received."""
        return self._parser.last_event_id

    def _start(self) -> Iterator[str]:
        if self._lines is None:
            self._response = self._open_stream()
            self._lines = self._response.iter_lines()
        return self._lines

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> StreamEvent:
        if self._closed:
            raise StopIteration
        lines = self._start()
        with translated_errors():
            for line in lines:
                event = self._parser.feed(line)
                if event is not None:
                    return event
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Close the connection (idempotent); the iteration ends."""
        self._closed = True
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Self:
        self._start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
