"""The Redis wire protocol (RESP2, https://redis.io/docs/latest/develop/reference/protocol-spec/) on one socket.

Invariants:
- Commands go out as arrays of bulk strings (``encode_command``); ``str`` is sent as UTF-8, ``int``/``float`` as
  their decimal text. Replies come back as ``bytes`` (simple and bulk strings), ``int``, ``None`` (nil) or lists;
  an error reply is *returned* as a ``RedisReplyError`` so a pipeline reads every reply and the connection stays
  in step — callers raise it.
- Every socket failure, timeout (each send and receive waits at most the socket's timeout) and malformed reply
  raises ``RedisConnectionError``; a connection that raised once is never used again. Readiness is asked with
  ``poll`` (any descriptor number, unlike ``select``).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Sequence
from typing import TypeAlias

_CHUNK = 65_536


class RedisError(Exception):
    """Redis could not answer a command."""


class RedisConnectionError(RedisError):
    """The connection failed, timed out, or carried something that is not RESP."""


class RedisReplyError(RedisError):
    """Redis answered with an error reply (``-ERR ...``)."""


Arg: TypeAlias = bytes | str | int | float
Reply: TypeAlias = "bytes | int | list[Reply] | RedisReplyError | None"


def _arg_bytes(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise TypeError("a Redis argument cannot be a bool: send 0 or 1")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"a Redis argument must be bytes, str, int or float, not {type(value).__name__}")


def encode_command(args: Sequence[Arg]) -> bytes:
    """One command as a RESP array of bulk strings."""
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg_bytes(arg)
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts)


class RespConnection:
    """One socket speaking RESP2, used by one thread at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._pos = 0

    def send(self, commands: Sequence[Sequence[Arg]]) -> None:
        """Write the commands in one go (a pipeline)."""
        try:
            self._sock.sendall(b"".join(encode_command(args) for args in commands))
        except OSError as exc:
            raise _connection_error("send", exc) from exc

    def read_reply(self) -> Reply:
        """The next complete reply."""
        try:
            reply = self._reply()
        except OSError as exc:
            raise _connection_error("receive", exc) from exc
        del self._buffer[: self._pos]
        self._pos = 0
        return reply

    def wait_readable(self, timeout_s: float) -> bool:
        """Whether a reply starts within ``timeout_s`` (already buffered bytes count; the end of the connection too,
        which the next read reports)."""
        if self._pos < len(self._buffer) or getattr(self._sock, "pending", lambda: 0)():
            return True
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        try:
            return bool(poller.poll(max(0, round(timeout_s * 1000))))
        except (OSError, ValueError) as exc:
            raise RedisConnectionError(f"connection unusable: {exc}") from exc

    def is_stale(self) -> bool:
        """Whether an idle connection has something to read (the server closed it, or sent what nobody asked for)."""
        return self.wait_readable(0.0)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def _reply(self) -> Reply:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return _integer(rest)
        if kind == b"$":
            size = _integer(rest)
            return None if size < 0 else self._exact(size)
        if kind == b"*":
            count = _integer(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise RedisConnectionError(f"not a RESP reply: {bytes(line[:40])!r}")

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n", self._pos)) < 0:
            self._fill()
        line = bytes(self._buffer[self._pos : end])
        self._pos = end + 2
        return line

    def _exact(self, size: int) -> bytes:
        while len(self._buffer) - self._pos < size + 2:
            self._fill()
        with memoryview(self._buffer) as view:  # one copy of a large payload, not two
            data = bytes(view[self._pos : self._pos + size])
        if self._buffer[self._pos + size : self._pos + size + 2] != b"\r\n":
            raise RedisConnectionError("a bulk string does not end with CRLF")
        self._pos += size + 2
        return data

    def _fill(self) -> None:
        chunk = self._sock.recv(_CHUNK)
        if not chunk:
            raise RedisConnectionError("the server closed the connection")
        self._buffer += chunk


def describe(exc: RedisError) -> str:
    """A Redis failure in one line for logs and breaker reasons: ``redis <ErrorType>: <message>``."""
    return f"redis {type(exc).__name__}: {exc}"


def _integer(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise RedisConnectionError(f"not a RESP integer: {text[:40]!r}") from None


def _connection_error(operation: str, exc: OSError) -> RedisConnectionError:
    if isinstance(exc, TimeoutError):
        return RedisConnectionError(f"timed out on {operation}")
    return RedisConnectionError(f"{operation} failed: {type(exc).__name__}: {exc}")
