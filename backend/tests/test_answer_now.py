"""Answers written by the server's protocol at once (``app.answer_now``, ``HeaderDeadlineProtocol``), against a real
uvicorn server on loopback: what is answered at once and what still goes to the ASGI app, headers and keep-alive,
pipelined requests in order (mixing both ways, and a long pipeline behind a slow request), the keep-alive timer, and
the client address from a trusted proxy's ``X-Forwarded-For``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from structlog.testing import capture_logs

from app.answer_now import Reply, run_now, without_app
from app.http_limits import AT_ONCE_PER_READ, protocol_with_deadline
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


@pytest.mark.parametrize(
    "request_bytes",
    [
        get("/none"),
        get("/boom"),
        head("POST", "/now", {"Content-Length": "0"}),
        head("HEAD", "/now", {}),
        get("/now", Connection="close"),
        b"GET /now HTTP/1.0\r\nHost: x\r\n\r\n",
    ],
    ids=["declined", "failed", "post", "head", "connection-close", "http-1.0"],
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


def test_pipelined_requests_are_answered_in_order_whichever_way() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"]) as sock:
        sock.sendall(get("/now?1") + get("/slow?0.3") + get("/now?2") + get("/none?3") + get("/now?4"))
        targets = [response.body.split(b" ")[1] for response in read_responses(sock, 5)]
    assert targets == [b"/now?1", b"/slow?0.3", b"/now?2", b"/none?3", b"/now?4"]
    assert seen.at_once[0] == "/now?1" and "/none?3" in seen.asgi  # (queued ones go to the app but the last)


def test_a_long_pipeline_behind_a_slow_request_is_answered_in_order() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"]) as sock:
        sock.sendall(get("/slow?0.3") + b"".join(get(f"/now?{number}") for number in range(1500)))
        targets = [response.body.split(b" ")[1] for response in read_responses(sock, 1501)]
    assert targets == [b"/slow?0.3", *(f"/now?{number}".encode() for number in range(1500))]


def test_a_read_full_of_pipelined_requests_is_answered_at_once_only_up_to_the_cap() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"]) as sock:
        sock.sendall(b"".join(get(f"/now?{number}") for number in range(AT_ONCE_PER_READ + 4)))
        targets = [response.body.split(b" ")[1] for response in read_responses(sock, AT_ONCE_PER_READ + 4)]
    assert targets == [f"/now?{number}".encode() for number in range(AT_ONCE_PER_READ + 4)]
    assert seen.at_once[:AT_ONCE_PER_READ] == [f"/now?{number}" for number in range(AT_ONCE_PER_READ)]
    assert seen.asgi[0] == f"/now?{AT_ONCE_PER_READ}"  # the rest took turns as ASGI tasks


def test_an_answer_at_once_does_not_leave_the_keep_alive_timer_on_the_next_request() -> None:
    seen = Seen()
    with served(seen, trusted=["127.0.0.1"], keep_alive_s=1) as sock:
        sock.sendall(get("/now?1") + get("/slow?1.6"))  # the second outlives the keep-alive timeout
        bodies = [response.body for response in read_responses(sock, 2)]
        sock.sendall(get("/now?3"))  # the connection is still open
        assert read_responses(sock, 1)[0].body == b"now /now?3"
    assert bodies == [b"now /now?1", b"asgi /slow?1.6"]


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
