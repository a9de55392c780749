"""The live stream's events (``GET /api/v1/stream``, Server-Sent Events) as typed objects.

``SseParser`` follows the SSE format: ``field: value`` lines, several ``data`` lines joined by newlines, a blank
line ends an event, lines starting with ``:`` are comments (the server's heartbeats), ``id`` is remembered as the
last event id. It turns ``ready`` and ``run`` events into ``ReadyEvent`` and ``RunEvent``; comments and event types
this client does not know are skipped, so a newer server can add some. Used by both clients' event streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from dantaro_client.errors import UnexpectedResponseError
from dantaro_client.models import StreamReady, StreamRun


@dataclass(frozen=True, slots=True)
class ReadyEvent:
    """The first event of every stream: the subscription is live (``data.replayed`` runs follow at once)."""

    id: str | None
    data: StreamReady
    retry_ms: int | None
    event: Literal["ready"] = "ready"


@dataclass(frozen=True, slots=True)
class RunEvent:
    """A newly published run; ``id`` resumes after it (``stream(last_event_id=event.id)``)."""

    id: str | None
    data: StreamRun
    event: Literal["run"] = "run"


StreamEvent = ReadyEvent | RunEvent


class SseParser:
    """Lines in (without their line ends), typed events out."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._retry_ms: int | None = None

    def feed(self, line: str) -> StreamEvent | None:
        """Take one line; the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry_ms = int(value)
        return None

    def _dispatch(self) -> StreamEvent | None:
        event, data, retry_ms = self._event or "message", "\n".join(self._data), self._retry_ms
        self._event, self._data, self._retry_ms = "", [], None
        if not data:
            return None
        try:
            if event == "ready":
                return ReadyEvent(id=self.last_event_id, data=StreamReady.model_validate_json(data), retry_ms=retry_ms)
            if event == "run":
                return RunEvent(id=self.last_event_id, data=StreamRun.model_validate_json(data))
        except ValidationError as exc:
            raise UnexpectedResponseError(f"stream event {event!r} does not match its model: {exc}") from None
        return None
