"""The connections behind ``app.storage.sql.Database`` when no SQLAlchemy engine is around: ``sqlite3`` and
``psycopg2`` used directly, pooled.

Invariants:
- At most ``max_connections`` are open at once (a call beyond waits ``POOL_WAIT_S``, then ``TimeoutError``), at most
  ``POOL_IDLE`` kept between calls, newest first.
- A connection is never handed out once it broke, once it is older than ``RECYCLE_S`` (a firewall may drop a long
  idle TCP connection silently), or when it was idle over ``PING_AFTER_S`` and fails a ``SELECT 1``; a PostgreSQL
  restart therefore costs one retry (``Database`` disposes the idle ones then), never a failed call.
- The drivers load on first use, so a process holds only its own. SQLite connections run with the pragmas of every
  connection of ours (WAL, foreign keys, busy timeout); the file is created 0600 when missing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from app.storage.sql import Database, Dialect, quietly

if TYPE_CHECKING:
    import sqlite3

SQLITE_BUSY_TIMEOUT_MS = 5_000
POOL_IDLE = 5
POOL_MAX = 10
POOL_WAIT_S = 30.0
RECYCLE_S = 1800.0
PING_AFTER_S = 10.0


class DriverPool:
    """Pooled connections made by ``connect``; see the module's invariants."""

    def __init__(self, connect: Callable[[], Any], *, dialect: Dialect, max_connections: int = POOL_MAX) -> None:
        self.dialect = dialect
        self._connect = connect
        self._idle: list[tuple[Any, float]] = []  # (connection, idle since), monotonic seconds
        self._born: dict[int, float] = {}  # id(connection) -> when it was made
        self._lock = threading.Lock()
        self._max = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)

    def acquire(self) -> Any:
        """A usable idle connection, else a new one."""
        if not self._slots.acquire(timeout=POOL_WAIT_S):
            raise TimeoutError(f"no database connection free within {POOL_WAIT_S:g} s ({self._max} in use)")
        try:
            return self._usable_idle() or self._new()
        except BaseException:
            self._slots.release()
            raise

    def release(self, raw: Any, *, broken: bool) -> None:
        """Keep the connection for the next call unless it broke or enough are idle."""
        try:
            with self._lock:
                if not broken and len(self._idle) < POOL_IDLE:
                    self._idle.append((raw, time.monotonic()))
                    return
            self._close(raw)
        finally:
            self._slots.release()

    def is_broken(self, raw: Any) -> bool:
        """psycopg2 marks a connection whose server went away ``closed``; SQLite's never break."""
        return bool(getattr(raw, "closed", 0))

    def dispose(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for raw, _ in idle:
            self._close(raw)

    def _usable_idle(self) -> Any:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                raw, idle_since_s = self._idle.pop()
            now_s = time.monotonic()
            too_old = now_s - self._born.get(id(raw), now_s) > RECYCLE_S
            if not too_old and not self.is_broken(raw) and (now_s - idle_since_s < PING_AFTER_S or _answers(raw)):
                return raw
            self._close(raw)

    def _new(self) -> Any:
        raw = self._connect()
        self._born[id(raw)] = time.monotonic()
        return raw

    def _close(self, raw: Any) -> None:
        self._born.pop(id(raw), None)
        quietly(raw.close)


def _answers(raw: Any) -> bool:
    try:
        cursor = raw.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
        raw.rollback()
    except Exception:  # any failure: the connection is dropped and another one made
        return False
    return True


def open_database(url: str, *, max_connections: int = POOL_MAX) -> Database:
    """A pooled ``Database`` for ``sqlite:///path`` or ``postgresql[+psycopg2]://...`` (connects on first use)."""
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        target, uri = sqlite_target(url)
        pool = DriverPool(lambda: connect_sqlite(target, uri=uri), dialect="sqlite", max_connections=max_connections)
        return Database(pool)
    if scheme in ("postgresql", "postgresql+psycopg2"):
        dsn = "postgresql://" + url.partition("://")[2]
        return Database(
            DriverPool(lambda: _connect_postgres(dsn), dialect="postgresql", max_connections=max_connections)
        )
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql+psycopg2://")


def sqlite_target(url: str) -> tuple[str, bool]:
    """What ``sqlite3.connect`` opens for a ``sqlite:///`` URL, read as SQLAlchemy reads it: ``(path, False)`` for a
    file (created 0600 with its directory when missing), ``(uri, True)`` for ``sqlite:///file:...?...&uri=true``."""
    parts = urlsplit(url, allow_fragments=False)
    path = unquote(parts.path)[1:]  # sqlite:///relative, sqlite:////absolute
    query = dict(parse_qsl(parts.query))
    if path.startswith("file:") and query.pop("uri", "").lower() == "true":
        return path + (f"?{urlencode(query)}" if query else ""), True
    if not path or path == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared: give a file, sqlite:///path/to/file")
    expanded = Path(path).expanduser()
    create_private_file(expanded)
    return str(expanded), False


def create_private_file(path: Path) -> None:
    """Create the database file (and its directory) readable by its owner only; an existing file keeps its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite's -wal/-shm follow the file's mode


def connect_sqlite(target: str, *, uri: bool = False) -> sqlite3.Connection:
    """A SQLite connection usable from any one thread at a time, configured like every connection of ours."""
    import sqlite3  # only a SQLite deployment loads the driver (and libsqlite3, about 1 MB)

    raw = sqlite3.connect(target, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False, uri=uri)
    configure_sqlite(raw)
    return raw


def configure_sqlite(raw: sqlite3.Connection) -> None:
    """WAL, enforced foreign keys, a busy timeout and NORMAL sync: shared by the worker's and the API's threads."""
    cursor = raw.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _connect_postgres(dsn: str) -> Any:
    import psycopg2  # only a PostgreSQL deployment loads the driver

    return psycopg2.connect(dsn)
