"""Answers written by the server's protocol at once (``app.answer_now``, ``HeaderDeadlineProtocol``): ``plain_get``
against httptools on a table of heads, and a real uvicorn server on loopback: what is answered at once and what still
goes to the ASGI app, headers and keep-alive, pipelined and split heads, the keep-alive timeout after an answer given
at once, and the client address from a trusted proxy's ``X-Forwarded-For``."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest
import uvicorn
from structlog.testing import capture_logs

from app.answer_now import Reply, plain_get, run_now, without_app
from app.http_limits import protocol_with_deadline
from tests.support.network import serving_in_thread
from tests.support.raw_http import head, read_responses


@dataclass
class Seen:
    """What the answer-now function and the ASGI app were asked, and which answers were reported sent."""

    at_once: list[str] = field(default_factory=list)
    asgi: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)

    def answer_now(self, scope: MutableMapping[str, Any]) -> Reply | None:
        """Answer ``/now`` at once, refuse ``/none``, fail on ``/boom``."""
        target = scope["path"] + "?" + scope["query_string"].decode()
        self.clients.append(scope["client"])
        if scope["path"] == "/boom":
            raise ValueError("a bug")
        if scope["path"] != "/now":
            return None
        self.at_once.append(target)
        body = b"now " + target.encode()
        headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"text/plain")]
        return Reply(200, headers, body, lambda: self.sent.append(target))

    async def app(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """Answer with the path; ``/slow?S`` sleeps S seconds first."""
        if scope["type"] != "http":
            return
        target = scope["path"] + "?" + scope["query_string"].decode()
        self.asgi.append(target)
        if scope["path"] == "/slow":
            await asyncio.sleep(float(scope["query_string"] or b"0.2"))
        body = b"asgi " + target.encode()
        headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def served(seen: Seen, *, trusted: list[str], keep_alive_s: int = 5) -> Iterator[socket.socket]:
    """A server whose protocol asks ``seen.answer_now`` first; yields a connection to it."""
    protocol = protocol_with_deadline(10.0, answer_now=seen.answer_now, trusted_proxies=trusted)
    config = uvicorn.Config(
        seen.app,
        interface="asgi3",
        log_config=None,
        http=protocol,
        timeout_keep_alive=keep_alive_s,
        forwarded_allow_ips=trusted,
    )
    with serving_in_thread(config) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        yield sock


def get(target: str, **headers: str) -> bytes:
    """A GET head for ``target``."""
    return head("GET", target, headers)


def test_an_answer_at_once_has_the_server_headers_and_keeps_the_connection() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"]) as sock:
        sock.sendall(get("/now?a"))
        first = read_responses(sock, 1)[0]
        sock.sendall(get("/now?b"))
        second = read_responses(sock, 1)[0]
    assert (first.status, first.body, second.body) == (200, b"now /now?a", b"now /now?b")
    assert list(first.headers) == ["date", "server", "content-length", "content-type"]
    assert seen.at_once == seen.sent == ["/now?a", "/now?b"] and seen.asgi == []
    assert [address[0] for address in seen.clients] == ["127.0.0.1", "127.0.0.1"]  # no X-Forwarded-For: the peer


@pytest.mark.parametrize(
    "request_bytes",
    [
        get("/none"),
        get("/boom"),
        head("POST", "/now", {"Content-Length": "0"}),
        head("HEAD", "/now", {}),
        get("/now", Connection="close"),
        b"GET /now HTTP/1.0\r\nHost: x\r\n\r\n",
        get("/now", **{"X-Odd": "trailing space "}),
        get("/n%6Fw"),
    ],
    ids=["declined", "failed", "post", "head", "connection-close", "http-1.0", "unusual-header", "percent"],
)
def test_what_is_not_answered_at_once_goes_to_the_asgi_app(request_bytes: bytes) -> None:
    seen = Seen()
    with capture_logs() as logs, served(seen, trusted=["127.0.0.1"]) as sock:
        sock.sendall(request_bytes)
        response = read_responses(sock, 1)[0]
    assert response.status == 200 and seen.at_once == [] and len(seen.asgi) == 1
    assert response.body.startswith(b"asgi") or request_bytes.startswith(b"HEAD")
    failed = [entry for entry in logs if entry["event"] == "answer_now_failed"]
    assert len(failed) == (request_bytes == get("/boom"))


def test_pipelined_and_split_heads_go_to_the_parser_and_are_answered_in_order() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"]) as sock:
        sock.sendall(get("/now?1") + get("/slow?0.3") + get("/now?2"))
        targets = [response.body.split(b" ")[1] for response in read_responses(sock, 3)]
        split = get("/now?3")
        sock.sendall(split[:20])
        time.sleep(0.2)
        sock.sendall(split[20:])
        last = read_responses(sock, 1)[0].body
    assert targets == [b"/now?1", b"/slow?0.3", b"/now?2"] and last == b"asgi /now?3"
    assert seen.at_once == [] and seen.asgi == ["/now?1", "/slow?0.3", "/now?2", "/now?3"]


def test_a_head_left_partly_read_behind_a_request_is_never_taken_for_a_new_one() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"]) as sock:
        sock.sendall(get("/slow?0.2") + b"GET /asgi HTTP/1.1\r\nX-A: foo")  # the second head stops mid-header
        time.sleep(0.5)  # the first is answered; the parser holds the rest of the second
        sock.sendall(get("/now"))  # for the parser: the rest of X-A's value, then the head's end
        time.sleep(0.3)
        sock.sendall(b"X-B: 1\r\n\r\n")  # not HTTP after the second request: uvicorn's 400
        statuses = [response.status for response in read_responses(sock, 3)]
    assert statuses == [200, 200, 400] and seen.at_once == [] and seen.asgi == ["/slow?0.2", "/asgi?"]


def test_after_an_answer_at_once_the_connection_keeps_its_keep_alive_timeout() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"], keep_alive_s=1) as sock:
        sock.sendall(get("/now?1"))
        read_responses(sock, 1)
        sock.sendall(get("/slow?1.5"))  # a request in progress outlives the timeout
        assert read_responses(sock, 1)[0].body == b"asgi /slow?1.5"
        sock.sendall(get("/now?2"))
        assert read_responses(sock, 1)[0].body == b"now /now?2"
        sock.settimeout(3)
        started_s = time.monotonic()
        assert sock.recv(1) == b""  # idle: closed by the keep-alive timeout
        assert 0.5 < time.monotonic() - started_s < 2.5


@pytest.mark.parametrize(
    ("trusted", "client"), [(["127.0.0.1"], "203.0.113.9"), (["10.1.2.3"], "127.0.0.1")], ids=["trusted", "not"]
)
def test_the_client_is_the_forwarded_one_only_from_a_trusted_proxy(trusted: list[str], client: str) -> None:
    seen = Seen()
    with served(seen, trusted=trusted) as sock:
        sock.sendall(get("/now", **{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}))
        read_responses(sock, 1)
    assert [address[0] for address in seen.clients] == [client]


def test_run_now_refuses_a_step_that_waits() -> None:
    run_now(without_app({}, None, None))  # type: ignore[arg-type]

    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="waited"):
        run_now(waits())


HEADS = [  # (head, whether plain_get reads it; else it is left to httptools)
    (b"GET / HTTP/1.1\r\n\r\n", True),
    (b"GET /a/b?c=1&d=%s HTTP/1.1\r\nHost: x\r\n\r\n" % b"e", True),
    (b"GET /a?b?c HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"GET /a? HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"GET /api/v1/support-levels/BTC/USDT?exchange=binance HTTP/1.1\r\nhost: x\r\n\r\n", True),
    (b"GET /x HTTP/1.1\r\nAuthorization: Bearer  two  spaces\r\nX-Tab:\tvalue\twith tab\r\n\r\n", True),
    (b"GET /x HTTP/1.1\r\nAuthorization:Bearer k\r\nACCEPT-Encoding: gzip;q=0, br\r\n\r\n", True),
    (b"GET /x HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\n\r\n", True),
    (b"GET /x HTTP/1.1\r\nX-Empty:\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nX-Trailing: v \r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nX-Fold: a\r\n b\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nX-High: \xe9\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET /x HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", True),
    (b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nProxy-Connection: close\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nPROXY-CONNECTION: close\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nProxy-Connection: keep-alive\r\n\r\n", True),
    (b"GET /x HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", False),
    (b"GET /x HTTP/1.0\r\n\r\n", False),
    (b"GET /x%20y HTTP/1.1\r\n\r\n", False),
    (b"GET /x#f HTTP/1.1\r\n\r\n", False),
    (b"GET http://h/x HTTP/1.1\r\n\r\n", False),
    (b"get /x HTTP/1.1\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nHost: x\r\n", False),
    (b"GET /x HTTP/1.1\nHost: x\n\n", False),
]


class Parsed:
    """What httptools makes of a head (the callbacks uvicorn uses; keep-alive and upgrade read when uvicorn reads
    them, as the head completes: httptools resets them once the message is complete)."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = 0
        self.parser: httptools.HttpRequestParser | None = None
        self.keep_alive_and_upgrade: tuple[bool, bool] | None = None

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.keep_alive_and_upgrade = (self.parser.should_keep_alive(), self.parser.should_upgrade())

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        self.complete += 1


@pytest.mark.parametrize(("data", "read"), HEADS)
def test_plain_get_reads_what_httptools_reads_or_leaves_it(data: bytes, read: bool) -> None:
    head = plain_get(data)
    assert (head is not None) == read
    if head is not None:
        parsed = Parsed()
        parser = parsed.parser = httptools.HttpRequestParser(parsed)
        parser.feed_data(data)
        assert parsed.complete == 1 and parser.get_method() == b"GET" and parser.get_http_version() == "1.1"
        assert parsed.keep_alive_and_upgrade == (True, False) and (parsed.url, parsed.headers) == head
