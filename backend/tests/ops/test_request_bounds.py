"""Bounded requests against the real server (``dantaro api``, uvicorn): a refused body is refused before the client
has sent it, a body without a length is cut off at the limit, and what the server answers itself (bytes that are not
HTTP, an oversized head, a request beyond the connection cap) is in the JSON error shape."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import DEV_AUTH
from tests.support.nginx import wait_closed
from tests.support.processes import ApiServer, dantaro_env, run_dantaro
from tests.support.raw_http import head, read_response, readable

BUNDLE = "/api/v1/bundle"
MAX_BODY_BYTES = 65536  # the default DANTARO_API_MAX_BODY_BYTES
MAX_HEADER_BYTES = 16384  # the default DANTARO_API_MAX_HEADER_BYTES
HUGE_BYTES = 30_000_000  # the 30 MB body


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("bounds")
    env = dantaro_env(root / "data")
    assert run_dantaro(["migrate", "upgrade"], env).returncode == 0  # the key store and the (empty) runs
    server = ApiServer(env, log_path=root / "api.log").start(timeout_s=60)  # a busy machine starts slowly
    try:
        yield server
    finally:
        server.kill()


def _connect(api: ApiServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", api.port), timeout=10)


@pytest.mark.parametrize(
    "framing", [{"Content-Length": "60000"}, {"Transfer-Encoding": "chunked"}], ids=["length", "chunked"]
)
def test_a_request_without_a_valid_key_is_answered_before_its_body_is_sent(
    api: ApiServer, framing: dict[str, str]
) -> None:
    for auth in ({}, {"Authorization": "Bearer dk_nope_nope"}):
        with _connect(api) as sock:
            sock.sendall(head("POST", BUNDLE, {"Content-Type": "application/json", **auth, **framing}))
            response = read_response(sock)  # not one byte of the body was sent
            assert response.status == 401 and response.error()[0] == "unauthorized"
            assert response.headers["connection"] == "close"
            assert wait_closed(sock, timeout_s=5) < 5  # the server does not wait for the body


def test_a_body_announced_over_the_limit_is_refused_before_it_is_sent(api: ApiServer) -> None:
    with _connect(api) as sock:
        sock.sendall(head("POST", BUNDLE, {**DEV_AUTH, "Content-Length": str(HUGE_BYTES)}))
        response = read_response(sock)
        assert wait_closed(sock, timeout_s=5) < 5
    code, message = response.error()
    assert response.status == 413 and code == "payload_too_large" and str(MAX_BODY_BYTES) in message


def test_a_body_without_a_length_is_cut_off_at_the_limit(api: ApiServer) -> None:
    chunk = b" " * 16384
    sent = 0
    with _connect(api) as sock:
        sock.sendall(head("POST", BUNDLE, {**DEV_AUTH, "Transfer-Encoding": "chunked"}))
        try:
            while sent < HUGE_BYTES and not readable(sock):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed while the client was still sending: the answer is waiting
        response = read_response(sock)
    assert response.status == 413 and response.error()[0] == "payload_too_large"
    assert sent < HUGE_BYTES  # answered long before the body's end


def test_what_the_server_answers_itself_has_the_json_shape(api: ApiServer) -> None:
    with _connect(api) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        not_http = read_response(sock)
    with _connect(api) as sock:
        sock.sendall(head("GET", "/health", {"X-Padding": "p" * (MAX_HEADER_BYTES + 1)}))
        oversized = read_response(sock)
    with _connect(api) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Padding: " + b"p" * MAX_HEADER_BYTES)  # and never ends
        unfinished = read_response(sock)
    with _connect(api) as sock:
        sock.sendall(head("GET", "/api/v1/recommendations/", {**DEV_AUTH, "Host": "evil.example"}))
        slashed = read_response(sock)
    assert not_http.status == 400 and not_http.error()[0] == "bad_request"
    assert oversized.status == 431 and oversized.error()[0] == "headers_too_large"
    assert str(MAX_HEADER_BYTES) in oversized.error()[1]
    assert unfinished.status == 431 and unfinished.error()[0] == "headers_too_large"  # before the header deadline
    for response in (not_http, oversized, unfinished):
        assert response.headers["connection"] == "close"
    assert slashed.status == 404 and slashed.error()[0] == "not_found" and "location" not in slashed.headers


def test_a_pipelined_head_over_the_limit_gets_its_431_too(api: ApiServer) -> None:
    small = head("GET", "/health", {})
    oversized = head("GET", "/health", {"X-Padding": "p" * (MAX_HEADER_BYTES + 1)})
    received = b""
    with _connect(api) as sock:
        sock.sendall(small + oversized)  # the second head arrives while the first request is answered
        while chunk := sock.recv(65536):
            received += chunk
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", received) == [b"200", b"431"]  # the 200's body ends without a newline
    assert b'"headers_too_large"' in received


def test_a_head_just_under_the_limit_with_its_body_in_the_same_packet_is_served(api: ApiServer) -> None:
    body = b'{"include_recommendations": false}' + b" " * 60000  # head and body arrive in one read
    padding = {"X-Padding": "p" * (MAX_HEADER_BYTES - 300)}
    with _connect(api) as sock:
        framing = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        request = head("POST", BUNDLE, {**DEV_AUTH, **padding, **framing})
        sock.sendall(request + body)
        response = read_response(sock)
    assert response.status == 503 and response.error()[0] == "data_not_ready"  # read in full, then: no run yet


def test_a_request_beyond_the_connection_cap_gets_a_json_503(tmp_path: Path) -> None:
    env = dantaro_env(tmp_path / "data", DANTARO_API_MAX_CONNECTIONS="2")
    capped = ApiServer(env, log_path=tmp_path / "api.log").start(timeout_s=60)
    try:
        with _connect(capped) as idle, _connect(capped) as sock:
            idle.sendall(b"GET /health HTTP/1.1\r\n")  # holds one of the two
            sock.sendall(head("GET", "/health", {}))
            response = read_response(sock)
    finally:
        capped.kill()
    assert response.status == 503 and response.error()[0] == "overloaded"
    assert response.headers["retry-after"] == "1" and response.headers["connection"] == "close"
