"""HTTP/1.1 by hand over a socket, for tests that must control what a client sends and when: a head without its
body, a body sent slowly or without end, bytes that are not HTTP. Times are seconds (``*_s``)."""

from __future__ import annotations

import json
import select
import socket
from dataclasses import dataclass
from typing import Any, BinaryIO


@dataclass(frozen=True)
class RawResponse:
    """One response as it came off the wire (header names lower-cased)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> tuple[str, str]:
        """``(code, message)`` of a body in the API's JSON error shape (fails on any other body)."""
        assert self.headers.get("content-type") == "application/json", self.headers
        document: dict[str, Any] = json.loads(self.body)
        assert document["success"] is False and set(document["error"]) == {"code", "message"}
        return document["error"]["code"], document["error"]["message"]


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """A request head: request line, ``Host`` (unless given) and ``headers``."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in {"Host": "x", **headers}.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def readable(sock: socket.socket) -> bool:
    """Whether the peer has sent something (or closed) that ``recv`` would return now."""
    ready, _, _ = select.select([sock], [], [], 0)
    return bool(ready)


def read_response(sock: socket.socket, *, timeout_s: float = 10.0) -> RawResponse:
    """Read one response with a ``Content-Length`` body (or up to the close)."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a complete response head: {data!r}")
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "-1"))
    while len(body) < length or length < 0:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(status=int(status_line.split(" ")[1]), headers=headers, body=body)


def read_responses(sock: socket.socket, count: int, *, timeout_s: float = 10.0) -> list[RawResponse]:
    """Read ``count`` responses in a row (pipelined answers), each with a ``Content-Length`` body; what the server
    sent after them is lost."""
    sock.settimeout(timeout_s)
    with sock.makefile("rb") as stream:
        return [_next_response(stream, number, count) for number in range(count)]


def _next_response(stream: BinaryIO, number: int, count: int) -> RawResponse:
    status_line = stream.readline().decode("latin-1")
    if not status_line:
        raise ConnectionError(f"closed after {number} of {count} responses")
    headers = {}
    for line in iter(stream.readline, b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return RawResponse(status=int(status_line.split(" ")[1]), headers=headers, body=body)
