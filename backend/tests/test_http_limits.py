"""``app.http_limits`` in process: one timer per event loop for the request heads still arriving (``HeadWatch``), and
the bound that lets a request skip counting its head (``head_bytes`` is at most 5/4 of the bytes read)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import httptools
import pytest

from app.http_limits import SWEEP_EVERY_S, HeadWatch, head_bytes, head_watch


class Connection:
    """What ``HeadWatch`` needs of a protocol: its deadline and what to do past it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, header_timeout_s: float) -> None:
        self.loop = loop
        self.header_timeout_s = header_timeout_s
        self.late_after_s: float | None = None
        self.started_s = 0.0

    def too_slow(self) -> None:
        self.late_after_s = asyncio.get_running_loop().time() - self.started_s


def test_a_head_past_its_deadline_is_closed_one_sweep_late_at_most_and_the_timer_stops() -> None:
    async def scenario() -> tuple[Connection, Connection, Connection, bool]:
        loop = asyncio.get_running_loop()
        watch = HeadWatch()
        slow, arrived, patient = Connection(loop, 0.3), Connection(loop, 0.3), Connection(loop, 5.0)
        for connection in (slow, arrived, patient):
            connection.started_s = loop.time()
            watch.start(connection)  # type: ignore[arg-type]
        watch.stop(arrived)  # type: ignore[arg-type]
        await asyncio.sleep(0.3 + 2 * SWEEP_EVERY_S)
        watch.stop(patient)  # type: ignore[arg-type]
        await asyncio.sleep(2 * SWEEP_EVERY_S)
        return slow, arrived, patient, not watch.sweeping

    slow, arrived, patient, stopped = asyncio.run(scenario())
    assert slow.late_after_s is not None and 0.3 <= slow.late_after_s <= 0.3 + SWEEP_EVERY_S + 0.1
    assert arrived.late_after_s is None and patient.late_after_s is None
    assert stopped  # no head arriving: no timer left running


def test_a_loop_with_a_watch_can_still_be_collected() -> None:
    async def watched() -> weakref.ref[asyncio.AbstractEventLoop]:
        loop = asyncio.get_running_loop()
        watch = head_watch(loop)
        connection = Connection(loop, 5.0)
        watch.start(connection)  # type: ignore[arg-type]
        watch.stop(connection)  # type: ignore[arg-type]
        return weakref.ref(loop)

    loop_ref = asyncio.run(watched())  # closes its loop with the sweep still scheduled
    gc.collect()
    assert loop_ref() is None


class Head:
    """The scope parts ``head_bytes`` reads, filled by the httptools parser uvicorn uses."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))


@pytest.mark.parametrize(
    "wire",
    [
        b"GET / HTTP/1.1\r\n" + b"a:\r\n" * 500 + b"\r\n",  # the most headers per byte
        b"GET /x?" + b"q" * 900 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /api/v1/recommendations HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer dk_x_y\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"x-long:" + b"v" * 5000 + b"\r\n\r\n",
    ],
)
def test_the_counted_head_is_at_most_five_quarters_of_the_bytes_read(wire: bytes) -> None:
    parsed = Head()
    httptools.HttpRequestParser(parsed).feed_data(wire)
    url = httptools.parse_url(parsed.url)
    scope = {"raw_path": url.path, "query_string": url.query or b"", "headers": parsed.headers}
    assert head_bytes(scope) * 4 <= len(wire) * 5  # type: ignore[arg-type]
