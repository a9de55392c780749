"""A small thread-safe Redis client on ``app.storage.resp``: pooled connections, pipelines, Lua scripts, pub/sub.

The API process uses it instead of redis-py, whose import alone costs 3.6 MB of the API's 74 MB budget
(docs/performance.md). It implements what the readers need and nothing else.

Invariants:
- URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS, system CAs, host name checked) and
  ``unix://[[user]:password@]/path[?db=N]``; a new connection authenticates and selects its database first.
- Every wait (connect, send, receive) is bounded by ``timeout_s``. A failed connection is closed, never reused; a
  connection failure is retried ``retries`` times on a new connection, and once more when a connection taken from
  the pool turns out closed by the server before it answered (a Redis restart: the command never ran).
- Error replies raise ``RedisReplyError`` after the whole pipeline was read, so the connection stays usable.
- Connections idle longer than ``IDLE_S`` are closed instead of reused; at most ``MAX_IDLE`` are kept.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from app.storage.resp import Arg, RedisConnectionError, RedisError, RedisReplyError, Reply, RespConnection

IDLE_S = 60.0
MAX_IDLE = 16
DEFAULT_PORT = 6379

Command = Sequence[Arg]


@dataclass(frozen=True)
class RedisAddress:
    """Where and how to connect, parsed from a Redis URL."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def handshake(self) -> list[list[Arg]]:
        """The commands a new connection sends before any other."""
        commands: list[list[Arg]] = []
        if self.password is not None:
            user: list[Arg] = [] if self.username is None else [self.username]
            commands.append(["AUTH", *user, self.password])
        if self.db:
            commands.append(["SELECT", self.db])
        return commands


def parse_redis_url(url: str) -> RedisAddress:
    """The address in a ``redis://``, ``rediss://`` or ``unix://`` URL (``ValueError`` says what is wrong)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"a Redis URL starts with redis://, rediss:// or unix://, not {parts.scheme or url!r}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    query = parse_qs(parts.query)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// Redis URL needs the socket path: unix:///run/redis/redis.sock")
        db_text = query.get("db", ["0"])[0]
        return RedisAddress(unix_path=parts.path, db=_db(db_text), username=username, password=password)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"the port in the Redis URL is not a number from 1 to 65535: {parts.netloc!r}") from None
    db_text = parts.path.strip("/") or query.get("db", ["0"])[0]
    return RedisAddress(
        host=parts.hostname or "127.0.0.1",
        port=port,
        db=_db(db_text),
        username=username,
        password=password,
        tls=parts.scheme == "rediss",
    )


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"the Redis database must be a number like /0, not {text!r}")
    return int(text)


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

    def subscribe(self, channel: str) -> Subscription:
        """A subscription to one channel on a connection of its own."""
        return Subscription(self._connect(), channel, timeout_s=self._timeout_s)

    def close(self) -> None:
        """Close the idle connections; connections in use close when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _round_trip(self, commands: Sequence[Command]) -> list[Reply]:
        attempts_left = self._retries
        while True:
            connection, reused = self._take()
            try:
                connection.send(commands)
                replies = [connection.read_reply() for _ in commands]
            except RedisConnectionError as exc:
                connection.close()
                stale = reused and connection.silent_since_send and not isinstance(exc.__cause__, TimeoutError)
                if not stale and attempts_left <= 0:
                    raise
                attempts_left -= 0 if stale else 1
                continue
            except BaseException:
                connection.close()
                raise
            self._give_back(connection)
            return replies

    def _take(self) -> tuple[RespConnection, bool]:
        now_s = time.monotonic()
        with self._lock:
            while self._idle:
                connection, idle_since_s = self._idle.pop()
                if now_s - idle_since_s <= IDLE_S:
                    return connection, True
                connection.close()
        return self._connect(), False

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
            return _wrap_tls(sock, address.host) if address.tls else sock
        except OSError as exc:
            where = address.unix_path or f"{address.host}:{address.port}"
            raise RedisConnectionError(f"cannot connect to Redis at {where}: {exc}") from exc


def _connect_unix(sock: socket.socket, path: str) -> None:
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise


def _wrap_tls(sock: socket.socket, host: str) -> socket.socket:
    import ssl  # only rediss:// needs it

    try:
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
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

    def __init__(self, connection: RespConnection, channel: str, *, timeout_s: float) -> None:
        self._connection = connection
        self.channel = channel
        try:
            connection.send([["SUBSCRIBE", channel]])
            self._next_reply(timeout_s)
        except BaseException:
            connection.close()
            raise

    def get_message(self, *, timeout_s: float) -> bytes | None:
        """The next message's data, or None when none arrives within ``timeout_s``."""
        if not self._connection.wait_readable(timeout_s):
            return None
        reply = self._connection.read_reply()
        if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
            data = reply[2]
            return data if isinstance(data, bytes) else None
        if isinstance(reply, RedisReplyError):
            raise reply
        return None

    def close(self) -> None:
        """Close the subscription's connection."""
        self._connection.close()

    def _next_reply(self, timeout_s: float) -> Reply:
        if not self._connection.wait_readable(timeout_s):
            raise RedisConnectionError(f"no SUBSCRIBE confirmation within {timeout_s:g} s")
        reply = self._connection.read_reply()
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply
