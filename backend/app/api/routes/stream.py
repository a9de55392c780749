"""``GET /api/v1/stream``: Server-Sent Events, one ``run`` event per newly published run.

On the wire (``text/event-stream``): first ``ready`` (the subscription is live; ``retry`` sets the client's reconnect
delay), then the runs replayed after ``Last-Event-ID``, then one ``run`` event per run published while the stream is
open, in publish order per exchange, each within about a second of its publish. A ``: heartbeat`` comment is sent
after every ``stream_heartbeat_s`` without an event. Every event's ``id`` is the stream's position (``Cursor``):
sending it back as ``Last-Event-ID`` (browsers' EventSource does) replays what was missed, up to
``stream_resume_runs`` runs per exchange.

Errors come before the stream starts, as ordinary JSON errors: 401/429 (the key), 404 (unknown exchange), 422 (a
``Last-Event-ID`` this API did not send), 429 ``too_many_streams`` (the key holds ``stream_max_per_key`` open
streams) and 503 ``shutting_down``. The key's stream slot and the hub subscription are released however the stream
ends (client gone, server shutdown, or a stream that fell ``QUEUE_LIMIT`` runs behind and is ended to resume).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from app.api.auth import ApiPrincipal
from app.api.deps import EXCHANGE_MAX_CHARS, ApiRuntime, AuthDep, resolve_exchange, runtime_of
from app.api.errors import ApiError
from app.api.integration_schemas import StreamReady, StreamRun
from app.api.responses import dump_json
from app.api.run_stream import (
    CURSOR_MAX_CHARS,
    Cursor,
    CursorError,
    RunHub,
    StreamClosedError,
    Subscription,
    parse_cursor,
)
from app.api.schemas import ERROR_RESPONSES, ErrorResponse
from app.storage.queries.run_feed import PublishedRun, RunFeedRepository

router = APIRouter(tags=["integrations"])

EVENT_STREAM = "text/event-stream"
RETRY_MS = 3000  # EventSource's reconnect delay, sent with ``ready``
HEARTBEAT = b": heartbeat\n\n"
SHUTDOWN = b": server shutting down; reconnect with Last-Event-ID\n\n"
BEHIND = b": this stream fell too far behind; reconnect with Last-Event-ID\n\n"
# no-cache: never stored by a proxy; X-Accel-Buffering: nginx passes each event on at once
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
STREAM_RESPONSES = {
    **ERROR_RESPONSES,
    200: {
        "description": "an endless text/event-stream: a ready event (data: StreamReady), then run events (data: "
        "StreamRun) and heartbeat comments; see docs/integrations.md",
        "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
    },
    422: {"model": ErrorResponse, "description": "invalid parameter or a Last-Event-ID this API did not send"},
    429: {
        "model": ErrorResponse,
        "description": "the key's per-minute budget is used up, or it holds its maximum of open streams",
    },
    503: {"model": ErrorResponse, "description": "the server is shutting down"},
}
EVENT_MODELS = (StreamReady, StreamRun)  # the events' data, listed in the OpenAPI components


def sse_event(event: str, data: object, *, event_id: str, retry_ms: int | None = None) -> bytes:
    """One SSE event block (``data`` as one line of JSON)."""
    retry = b"" if retry_ms is None else b"retry: %d\n" % retry_ms
    return b"%sid: %s\nevent: %s\ndata: %s\n\n" % (retry, event_id.encode(), event.encode(), dump_json(data))


def run_data(run: PublishedRun) -> dict[str, object]:
    """A ``run`` event's data."""
    return {"run_id": run.run_id, "exchange": run.exchange, "as_of": run.as_of, "published_at": run.published_at}


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a stream starts: its cursor, the runs to replay first, whether some could not be."""

    cursor: Cursor
    replay: list[PublishedRun]
    missed: bool


def plan_resume(
    feed: RunFeedRepository, subscription: Subscription, wanted: Mapping[str, str] | None, *, limit: int
) -> Resume:
    """The replay after ``wanted`` (``Last-Event-ID``): at most ``limit`` newest runs per exchange."""
    cursor = Cursor(dict(subscription.start))
    replay: list[PublishedRun] = []
    missed = False
    for exchange in sorted(subscription.exchanges & set(wanted or ())):
        assert wanted is not None
        since = feed.get(run_id=wanted[exchange]) if wanted[exchange] else None
        if wanted[exchange] and (since is None or since.exchange != exchange):
            missed = True  # deleted by retention, or not a run of ours: nothing to resume from
            continue
        newest = feed.newest(exchange=exchange, limit=limit + 1)
        tail = [run for run in newest if since is None or run.position > since.position]
        missed |= len(tail) > limit
        cursor.runs[exchange] = since
        replay += tail[max(0, len(tail) - limit) :]
    return Resume(cursor, sorted(replay, key=lambda run: run.published_at), missed)


class _Stream:
    """One open stream's resources; ``close`` (idempotent) gives them back."""

    def __init__(self, runtime: ApiRuntime, hub: RunHub, principal: ApiPrincipal, token: str) -> None:
        self.runtime, self.hub, self.key_id, self.token = runtime, hub, principal.key_id, token
        self.subscription: Subscription | None = None
        self._closed = False

    def close(self) -> None:
        """Unsubscribe and free the key's slot (once)."""
        if self._closed:
            return
        self._closed = True
        if self.subscription is not None:
            self.hub.unsubscribe(self.subscription)
        self.runtime.stream_slots.release(self.key_id, self.token)

    async def renew(self) -> None:
        """Keep the key's slot leased."""
        await run_in_threadpool(self.runtime.stream_slots.renew, self.key_id, self.token)


async def _events(stream: _Stream, resume: Resume) -> AsyncIterator[bytes]:
    settings, subscription, cursor = stream.runtime.settings, stream.subscription, resume.cursor
    assert subscription is not None
    ready = {
        "exchanges": sorted(subscription.exchanges),
        "heartbeat_s": settings.stream_heartbeat_s,
        "replayed": len(resume.replay),
        "missed": resume.missed,
    }
    try:
        yield sse_event("ready", ready, event_id=cursor.text(), retry_ms=RETRY_MS)
        for run in resume.replay:
            if cursor.advance(run):
                yield sse_event("run", run_data(run), event_id=cursor.text())
        renewed_s = time.monotonic()
        while True:
            try:
                item = await asyncio.wait_for(subscription.queue.get(), settings.stream_heartbeat_s)
            except TimeoutError:
                yield HEARTBEAT
            else:
                if item is None:  # the hub closed (shutdown) or this stream fell too far behind
                    yield BEHIND if subscription.overflowed else SHUTDOWN
                    return
                if cursor.advance(item):
                    yield sse_event("run", run_data(item), event_id=cursor.text())
            if time.monotonic() - renewed_s >= settings.stream_heartbeat_s:
                await stream.renew()
                renewed_s = time.monotonic()
    finally:
        stream.close()


def _wanted(last_event_id: str | None) -> dict[str, str] | None:
    if last_event_id is None or not last_event_id.strip():
        return None
    try:
        return parse_cursor(last_event_id)
    except CursorError as exc:
        raise ApiError(status_code=422, code="invalid_last_event_id", message=str(exc)) from None


def _shutting_down() -> ApiError:
    return ApiError(status_code=503, code="shutting_down", message="the server is shutting down; reconnect")


async def _open(runtime: ApiRuntime, principal: ApiPrincipal, exchanges: list[str]) -> _Stream:
    hub = runtime.runs
    if hub is None or hub.closed:
        raise _shutting_down()
    limit = runtime.settings.stream_max_per_key
    token = await run_in_threadpool(runtime.stream_slots.acquire, principal.key_id, limit=limit)
    if token is None:
        raise ApiError(
            status_code=429,
            code="too_many_streams",
            message=f"this key already holds {limit} open streams (DANTARO_STREAM_MAX_PER_KEY); close one first",
            headers={"Retry-After": str(round(runtime.settings.stream_heartbeat_s))},
        )
    stream = _Stream(runtime, hub, principal, token)
    try:
        stream.subscription = await hub.subscribe(exchanges)
    except StreamClosedError:
        stream.close()
        raise _shutting_down() from None
    except BaseException:
        stream.close()
        raise
    return stream


@router.get("/stream", response_class=StreamingResponse, responses=STREAM_RESPONSES)
async def get_stream(
    request: Request,
    principal: AuthDep,
    exchange: Annotated[
        str | None,
        Query(max_length=EXCHANGE_MAX_CHARS, description="only this exchange's runs; default: every configured one"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=CURSOR_MAX_CHARS,
            description="the id of the last event received: replays the runs published since",
        ),
    ] = None,
) -> Response:
    """A Server-Sent Events stream of newly published runs (see the module docstring and docs/integrations.md)."""
    runtime = runtime_of(request)
    settings = runtime.settings
    exchanges = [resolve_exchange(settings, exchange)] if exchange else list(settings.exchanges)
    wanted = _wanted(last_event_id)
    stream = await _open(runtime, principal, exchanges)
    try:
        subscription = stream.subscription
        assert subscription is not None
        limit = settings.stream_resume_runs
        resume = await stream.hub.read(lambda feed: plan_resume(feed, subscription, wanted, limit=limit))
    except BaseException:
        stream.close()
        raise
    return StreamingResponse(
        _events(stream, resume),
        media_type=EVENT_STREAM,
        headers=STREAM_HEADERS,
        background=BackgroundTask(stream.close),  # also when the body never started (client gone at once)
    )
