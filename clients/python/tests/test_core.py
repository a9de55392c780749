"""The client's parts without an API: the sans-I/O core fed answers step by step (retries, Retry-After, the bound,
the ETag cache), the stream parser, error bodies, and the timeouts of both transports against a loopback socket that
accepts connections and never answers. The client against the real API: ``backend/tests/integrations/``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import pytest
from dantaro_client import (
    AsyncDantaroClient,
    DantaroClient,
    RateLimitedError,
    RequestTimeoutError,
    RetryPolicy,
    RunEvent,
    TransportError,
    UnavailableError,
)
from dantaro_client._core import Core, Options, Send, Sleep
from dantaro_client.endpoints import exchanges, recommendations
from dantaro_client.errors import api_error
from dantaro_client.retry import parse_retry_after
from dantaro_client.sse import ReadyEvent, SseParser

EXCHANGES = b'{"success":true,"default_exchange":"binance","exchanges":[]}'
ERROR = b'{"success":false,"error":{"code":"%s","message":"%s"}}'


def _core(retry: RetryPolicy | None = None, *, etag_cache_size: int = 8) -> Core:
    timeout = httpx2.Timeout(1.0)
    options = Options("http://api.test", "dk_key", timeout, timeout, retry or RetryPolicy(), etag_cache_size)
    return Core(options)


def _answer(request: httpx2.Request, status: int, body: bytes = b"", **headers: str) -> httpx2.Response:
    return httpx2.Response(status, content=body, headers=headers, request=request)


def test_a_429_waits_its_retry_after_then_the_answer_is_read() -> None:
    steps = _core().steps(exchanges())
    send = next(steps)
    assert isinstance(send, Send) and send.request.headers["authorization"] == "Bearer dk_key"
    wait = steps.send(_answer(send.request, 429, ERROR % (b"rate_limited", b"slow down"), **{"Retry-After": "7"}))
    assert wait == Sleep(7.0)
    again = steps.send(None)
    assert isinstance(again, Send) and again.request is send.request
    with pytest.raises(StopIteration) as done:
        steps.send(_answer(send.request, 200, EXCHANGES))
    assert done.value.value.default_exchange == "binance"


def test_an_http_date_retry_after_and_the_backoff_without_one() -> None:
    now = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=12), usegmt=True), now=now) == 12.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after(" 3 ") == 3.0
    steps = _core(RetryPolicy(max_attempts=3, backoff_s=0.5)).steps(exchanges())
    send = next(steps)
    assert steps.send(_answer(send.request, 503, b"<html>busy</html>")) == Sleep(0.5)
    steps.send(None)
    assert steps.send(_answer(send.request, 503)) == Sleep(1.0)


def test_attempts_and_total_wait_are_bounded() -> None:
    steps = _core(RetryPolicy(max_attempts=2, max_wait_s=30)).steps(exchanges())
    send = next(steps)
    steps.send(_answer(send.request, 503, ERROR % (b"data_not_ready", b"wait"), **{"Retry-After": "4"}))
    steps.send(None)
    with pytest.raises(UnavailableError) as second:
        steps.send(_answer(send.request, 503, ERROR % (b"data_not_ready", b"wait"), **{"Retry-After": "4"}))
    assert second.value.code == "data_not_ready" and second.value.retry_after_s == 4.0
    steps = _core(RetryPolicy(max_attempts=5, max_wait_s=10)).steps(exchanges())
    send = next(steps)
    with pytest.raises(RateLimitedError) as too_long:  # 37 s > the 10 s budget: raised without waiting
        steps.send(_answer(send.request, 429, ERROR % (b"rate_limited", b"limit"), **{"Retry-After": "37"}))
    assert too_long.value.retry_after_s == 37.0 and too_long.value.message == "limit"
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_a_304_returns_the_remembered_model_and_other_urls_have_their_own_entry() -> None:
    core = _core()
    steps = core.steps(exchanges())
    send = next(steps)
    assert "if-none-match" not in send.request.headers
    with pytest.raises(StopIteration) as first:
        steps.send(_answer(send.request, 200, EXCHANGES, ETag='W/"run-1"'))
    steps = core.steps(exchanges())
    send = next(steps)
    assert send.request.headers["if-none-match"] == 'W/"run-1"'
    with pytest.raises(StopIteration) as again:
        steps.send(_answer(send.request, 304))
    assert again.value.value is first.value.value
    other = next(core.steps(recommendations(top_n=3)))
    assert isinstance(other, Send) and "if-none-match" not in other.request.headers
    assert other.request.url.params["top_n"] == "3" and "min_score" not in other.request.url.params


def test_error_bodies_of_any_shape_become_api_errors() -> None:
    problem = api_error(401, {"x-request-id": "abc"}, ERROR % (b"unauthorized", b"invalid key"), retry_after_s=None)
    assert (problem.code, problem.message, problem.request_id, problem.status_code) == (
        "unauthorized",
        "invalid key",
        "abc",
        401,
    )
    assert str(problem) == "HTTP 401 unauthorized: invalid key"
    page = api_error(502, {}, b"<html>Bad Gateway</html>", retry_after_s=None)
    assert page.code == "http_502" and "Bad Gateway" in page.message and type(page).__name__ == "ApiError"
    assert api_error(500, {}, b"", retry_after_s=None).message == "Internal Server Error"


def test_the_stream_parser_types_events_and_skips_comments_and_unknown_events() -> None:
    parser = SseParser()
    lines = [
        "retry: 3000",
        "id: binance:r0",
        "event: ready",
        'data: {"exchanges":["binance"],"heartbeat_s":15.0,',
        'data: "replayed":0,"missed":false}',
        "",
        ": heartbeat",
        "",
        "event: something-new",
        "data: {}",
        "",
        "id: binance:r1",
        "event: run",
        'data: {"run_id":"r1","exchange":"binance","as_of":"2022-06-23T13:00:00+00:00",'
        '"published_at":"2026-11-29T10:30:30+00:00"}',
        "",
    ]
    events = [event for event in map(parser.feed, lines) if event is not None]
    ready, run = events
    assert isinstance(ready, ReadyEvent) and ready.retry_ms == 3000 and ready.data.heartbeat_s == 15.0
    assert isinstance(run, RunEvent) and run.id == "binance:r1" and run.data.as_of.tzinfo is not None
    assert parser.last_event_id == "binance:r1"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_request_times_out_after_timeout_s(silent_port: int) -> None:
    with DantaroClient(f"http://127.0.0.1:{silent_port}", timeout_s=0.3) as client:
        started_s = time.monotonic()
        with pytest.raises(RequestTimeoutError, match="ReadTimeout"):
            client.exchanges()
        assert 0.3 <= time.monotonic() - started_s < 2.0


async def test_the_async_client_times_out_the_same_way(silent_port: int) -> None:
    async with AsyncDantaroClient(f"http://127.0.0.1:{silent_port}", timeout_s=0.3) as client:
        started_s = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await client.market_status()
        assert 0.3 <= time.monotonic() - started_s < 2.0


def test_no_listener_is_a_transport_error_and_timeouts_are_on_by_default() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        with DantaroClient(f"http://127.0.0.1:{port}") as client:
            with pytest.raises(TransportError) as refused:
                client.health()
            assert not isinstance(refused.value, RequestTimeoutError)
            assert (
                client.timeout == httpx2.Timeout(10.0) and repr(client) == f"DantaroClient('http://127.0.0.1:{port}')"
            )
