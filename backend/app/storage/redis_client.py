"""A small thread-safe Redis client on ``app.storage.resp``: pooled connections, pipelines, Lua scripts, pub/sub.

The API process uses it instead of redis-py, whose import alone costs 3.6 MB of the API's 74 MB budget
(docs/performance.md). It implements what the readers need and nothing else.

Invariants:
- URLs as ``app.redis_url`` reads them; a new connection authenticates and selects its database first.
- Every wait (connect, send, receive) is bounded by ``timeout_s``. A failed connection is closed, never reused.
  A pooled connection is checked before each use: one with something to read (the server closed it, e.g. a Redis
  restart) is dropped unused, so no command is ever sent twice because of it. ``retries`` (0 in the API) re-runs a
  call that failed on the connection, as redis-py's ``Retry`` does: only for commands that may run twice.
- Error replies raise ``RedisReplyError`` after the whole pipeline was read, so the connection stays usable.
- Connections idle longer than ``IDLE_S`` are closed instead of reused; at most ``MAX_IDLE`` are kept.
- A subscription sends PING after ``HEALTH_CHECK_S`` without traffic and fails when no answer comes within
  ``PONG_WAIT_S`` (a connection a firewall dropped silently), so its listener reconnects.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.redis_url import RedisAddress, parse_redis_url
from app.storage.resp import Arg, RedisConnectionError, RedisError, RedisReplyError, Reply, RespConnection

IDLE_S = 60.0
MAX_IDLE = 16
HEALTH_CHECK_S = 30.0
PONG_WAIT_S = 5.0

Command = Sequence[Arg]


@dataclass(frozen=True)
class Script:
    """A Lua script run by its SHA1 (``EVALSHA``), sent in full only when the server does not know it yet."""

    source: str

    @property
    def sha1(self) -> str:
        """The digest Redis knows the script by."""
        return hashlib.sha1(self.source.encode()).hexdigest()


class RedisClient:
    """Commands, pipelines, scripts and subscriptions over pooled connections; see the module's invariants."""

    def __init__(self, address: RedisAddress, *, timeout_s: float, retries: int = 0) -> None:
        self.address = address
        self._timeout_s = timeout_s
        self._retries = retries
        self._idle: list[tuple[RespConnection, float]] = []  # (connection, idle since) in monotonic seconds
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float, retries: int = 0) -> RedisClient:
        """A client for the URL (connects on first use)."""
        return cls(parse_redis_url(url), timeout_s=timeout_s, retries=retries)

    def execute(self, *args: Arg) -> Any:
        """Run one command and return its reply."""
        return self.pipeline([args])[0]

    def pipeline(self, commands: Sequence[Command], *, transaction: bool = False) -> list[Any]:
        """Run the commands in one round trip (inside MULTI/EXEC when ``transaction``); their replies in order."""
        batch = [["MULTI"], *commands, ["EXEC"]] if transaction else list(commands)
        replies = self._round_trip(batch)
        if transaction:
            replies = _transaction_replies(replies)
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
        return replies

    def ping(self) -> bool:
        """Whether Redis answers PING."""
        return bool(self.execute("PING") == b"PONG")

    def run_script(self, script: Script, *, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run a Lua script by its digest, loading it when Redis answers NOSCRIPT."""
        try:
            return self.execute("EVALSHA", script.sha1, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return self.execute("EVAL", script.source, len(keys), *keys, *args)

    def subscribe(self, channel: str, *, health_check_s: float = HEALTH_CHECK_S) -> Subscription:
        """A subscription to one channel on a connection of its own."""
        return Subscription(self._connect(), channel, timeout_s=self._timeout_s, health_check_s=health_check_s)

    def close(self) -> None:
        """Close the idle connections; connections in use close when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _round_trip(self, commands: Sequence[Command]) -> list[Reply]:
        retries_left = self._retries
        while True:
            try:
                return self._on_a_connection(commands)
            except RedisConnectionError:
                if retries_left <= 0:
                    raise
                retries_left -= 1

    def _on_a_connection(self, commands: Sequence[Command]) -> list[Reply]:
        connection = self._take()
        try:
            connection.send(commands)
            replies = [connection.read_reply() for _ in commands]
        except BaseException:
            connection.close()
            raise
        self._give_back(connection)
        return replies

    def _take(self) -> RespConnection:
        while (connection := self._idle_connection()) is not None:
            if not connection.is_stale():
                return connection
            connection.close()
        return self._connect()

    def _idle_connection(self) -> RespConnection | None:
        now_s = time.monotonic()
        with self._lock:
            while self._idle:
                connection, idle_since_s = self._idle.pop()
                if now_s - idle_since_s <= IDLE_S:
                    return connection
                connection.close()
        return None

    def _give_back(self, connection: RespConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()

    def _connect(self) -> RespConnection:
        connection = RespConnection(self._socket())
        try:
            handshake = self.address.handshake()
            connection.send(handshake)
            for reply in [connection.read_reply() for _ in handshake]:
                if isinstance(reply, RedisReplyError):
                    raise RedisReplyError(f"connecting to Redis: {reply}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _socket(self) -> socket.socket:
        address = self.address
        try:
            if address.unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._timeout_s)
                _connect_unix(sock, address.unix_path)
                return sock
            sock = socket.create_connection((address.host, address.port), timeout=self._timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _wrap_tls(sock, address) if address.tls else sock
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {address.where()}: {exc}") from exc


def _connect_unix(sock: socket.socket, path: str) -> None:
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise


def _wrap_tls(sock: socket.socket, address: RedisAddress) -> socket.socket:
    """The socket inside TLS as the address asks (closes the socket when the handshake fails)."""
    import ssl  # only rediss:// needs it

    context = ssl.create_default_context(cafile=address.ca_file)
    if address.cert_reqs != "required":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_OPTIONAL if address.cert_reqs == "optional" else ssl.CERT_NONE
    try:
        return context.wrap_socket(sock, server_hostname=address.host)
    except BaseException:
        sock.close()
        raise


def _transaction_replies(replies: list[Reply]) -> list[Reply]:
    """EXEC's replies, or the error that made Redis refuse the queued commands."""
    queued, executed = replies[:-1], replies[-1]
    if isinstance(executed, list):
        return executed
    refused = next((reply for reply in queued if isinstance(reply, RedisReplyError)), None)
    if isinstance(executed, RedisReplyError):
        raise RedisReplyError(f"{executed} ({refused})" if refused else str(executed))
    raise RedisError("the transaction was aborted (EXEC returned nil)")


class Subscription:
    """Messages published on one channel (the subscribe confirmation is read before this returns)."""

    def __init__(
        self,
        connection: RespConnection,
        channel: str,
        *,
        timeout_s: float,
        health_check_s: float = HEALTH_CHECK_S,
        pong_wait_s: float = PONG_WAIT_S,
    ) -> None:
        self._connection = connection
        self.channel = channel
        self._health_check_s = health_check_s
        self._pong_wait_s = pong_wait_s
        self._pinged_at_s: float | None = None
        try:
            connection.send([["SUBSCRIBE", channel]])
            if not connection.wait_readable(timeout_s):
                raise RedisConnectionError(f"no SUBSCRIBE confirmation within {timeout_s:g} s")
            self._read()
        except BaseException:
            connection.close()
            raise

    def get_message(self, *, timeout_s: float) -> bytes | None:
        """The next message's data, or None when none arrives within ``timeout_s``."""
        self._check_health()
        if not self._connection.wait_readable(timeout_s):
            return None
        reply = self._read()
        if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
            data = reply[2]
            return data if isinstance(data, bytes) else None
        return None  # a PING's answer, or a (un)subscribe confirmation

    def close(self) -> None:
        """Close the subscription's connection."""
        self._connection.close()

    def _check_health(self) -> None:
        now_s = time.monotonic()
        if self._pinged_at_s is None:
            if now_s - self._heard_at_s >= self._health_check_s:
                self._connection.send([["PING"]])
                self._pinged_at_s = now_s
        elif now_s - self._pinged_at_s > self._pong_wait_s:
            raise RedisConnectionError(f"the subscription's PING got no answer within {self._pong_wait_s:g} s")

    def _read(self) -> Reply:
        reply = self._connection.read_reply()
        self._heard_at_s, self._pinged_at_s = time.monotonic(), None
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply
