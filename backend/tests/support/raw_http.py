"""HTTP/1.1 by hand over a socket, for tests that must control what a client sends and when: a head without its
body, a body sent slowly or without end, bytes that are not HTTP. Times are seconds (``*_s``)."""

from __future__ import annotations

import json
import select
import socket
from dataclasses import dataclass
from typing import Any


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
