"""The database seam without SQLAlchemy: DB-API connections to SQLite (``sqlite3``) and PostgreSQL (``psycopg2``)
that run one statement text on both. The API process reads through it only, so it never loads SQLAlchemy; the
worker's repositories run the same statements on their session's connection (``app.storage.db.sql_connection``).

Invariants:
- Statements are written once with ``:name`` parameters (sqlite3's named style) and no ``%`` or ``::``; for psycopg2
  they are rewritten to ``%(name)s`` (cached per statement text).
- Bound datetimes must be aware (a naive one raises ``ValueError``, as ``UTCDateTime`` does). SQLite gets the text
  SQLAlchemy stores there (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), so stored and bound times compare correctly.
- Rows read with a ``Table`` come back decoded as SQLAlchemy's models decode them: its datetime columns as aware
  UTC datetimes, its JSON columns as values on both backends. ``TABLES`` states these schema facts for the tables
  read here; ``tests/storage/test_sql.py`` checks them against ``app.storage.models``.
- A connection serves one call at a time. ``read`` rolls back at the end, ``write`` commits. A call that failed
  because its PostgreSQL connection broke (a restarted server) is retried once on a new connection, so a restart
  costs no failed request; only idempotent statements run through here. Driver errors (and a pool that stays
  full for ``POOL_WAIT_S``) surface as ``DatabaseError``; other errors of the call pass through unchanged. On a
  session's connection (``app.storage.db.sql_connection``) driver errors are raised as SQLAlchemy raises them.
- The drivers load on first use, so a process holds only its own. SQLite connections run with the pragmas of every
  connection of ours (WAL, foreign keys, busy timeout); the file is created 0600 when missing. Nothing connects at
  import time; the pool connects on first use.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import orjson

if TYPE_CHECKING:
    import sqlite3

Dialect = Literal["sqlite", "postgresql"]
Translate = Callable[[Exception, str], Exception]  # (driver error, statement) -> the error to raise instead
T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 5_000
POOL_IDLE = 5  # connections kept open between calls
POOL_MAX = 10  # connections open at once; a call beyond waits up to POOL_WAIT_S
POOL_WAIT_S = 30.0
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite
_PARAMETER = re.compile(r":([A-Za-z_]\w*)")


@dataclass(frozen=True, slots=True)
class Table:
    """How one table's columns decode: which hold datetimes and which JSON."""

    name: str
    datetimes: frozenset[str] = frozenset()
    json: frozenset[str] = frozenset()


def _table(name: str, *, datetimes: str = "", json: str = "") -> Table:
    return Table(name, frozenset(datetimes.split()), frozenset(json.split()))


TABLES = {
    table.name: table
    for table in (
        _table("api_keys", datetimes="created_at revoked_at last_used_at"),
        _table("worker_heartbeats", datetimes="started_at last_beat_at"),
        _table(
            "analysis_runs",
            datetimes="started_at finished_at published_at generated_at data_as_of",
            json="errors models",
        ),
        _table("recommendations", json="details scores_by_horizon"),
        _table("support_levels", json="levels pivots volume_profile"),
        _table("market_status", json="top_gainers top_losers analysis_summary details"),
        _table("run_scores", datetimes="as_of window_end scored_at", json="excluded labels random_labels"),
        _table("symbol_outcomes", datetimes="as_of"),
        _table("candles"),
    )
}


class SqlConnection:
    """One DB-API connection of a known dialect, running statements written with ``:name`` parameters."""

    def __init__(self, raw: Any, *, dialect: Dialect, errors: Translate | None = None) -> None:
        self.raw = raw
        self.dialect = dialect
        self._errors = errors

    def rows(self, statement: str, *, table: Table | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every row as a dict by column name, decoded as ``table``'s columns when it is given."""
        cursor = self._run(statement, params)
        try:
            names = [column[0] for column in cursor.description]
            found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()
        if table is not None:
            for row in found:
                self._decode(row, table)
        return found

    def tuples(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row as a plain tuple, undecoded (numbers and text only)."""
        cursor = self._run(statement, params)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def execute_many(self, statement: str, params: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement per parameter set (the caller's ``write`` commits)."""
        cursor = self.raw.cursor()
        try:
            cursor.executemany(self._text(statement), [self._bound(one) for one in params])
        except Exception as exc:
            raise self._translated(exc, statement) from exc
        finally:
            cursor.close()

    def _run(self, statement: str, params: Mapping[str, Any]) -> Any:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self._text(statement), self._bound(params))
        except Exception as exc:
            cursor.close()
            raise self._translated(exc, statement) from exc
        return cursor

    def _translated(self, exc: Exception, statement: str) -> Exception:
        return exc if self._errors is None else self._errors(exc, statement)

    def _text(self, statement: str) -> str:
        return statement if self.dialect == "sqlite" else _pyformat(statement)

    def _bound(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self._bind(value) for name, value in params.items()}

    def _bind(self, value: Any) -> Any:
        if not isinstance(value, datetime):
            return value
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given: bind timezone-aware UTC datetimes")
        utc = value.astimezone(UTC)
        return utc.strftime(_SQLITE_TIME) if self.dialect == "sqlite" else utc

    def _decode(self, row: dict[str, Any], table: Table) -> None:
        for name in table.datetimes.intersection(row):
            row[name] = _utc(row[name])
        if self.dialect == "sqlite":  # psycopg2 decodes json columns itself
            for name in table.json.intersection(row):
                value = row[name]
                row[name] = None if value is None else orjson.loads(value)


@lru_cache(maxsize=256)
def _pyformat(statement: str) -> str:
    return _PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"a datetime column held {type(value).__name__}, not a time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Pool(Protocol):
    """Where a ``Database`` gets its connections."""

    dialect: Dialect

    def acquire(self) -> Any:
        """An open DB-API connection for one call."""
        ...

    def release(self, raw: Any, *, broken: bool) -> None:
        """Take back a connection after its call (``broken``: never hand it out again)."""
        ...

    def is_broken(self, raw: Any) -> bool:
        """True when the connection can no longer be used (its server went away)."""
        ...

    def dispose(self) -> None:
        """Close every idle connection."""
        ...


class Database:
    """Runs calls on pooled connections: ``read`` (rolled back) and ``write`` (committed)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self.dialect = pool.dialect

    def read(self, call: Callable[[SqlConnection], T]) -> T:
        """``call``'s answer on a connection whose transaction is rolled back afterwards."""
        return self._call(call, commit=False)

    def write(self, call: Callable[[SqlConnection], T]) -> T:
        """``call``'s answer on a connection committed afterwards (rolled back if ``call`` raised)."""
        return self._call(call, commit=True)

    def dispose(self) -> None:
        """Close the idle connections (calls after this connect again)."""
        self._pool.dispose()

    def _call(self, call: Callable[[SqlConnection], T], *, commit: bool) -> T:
        try:
            return self._once(call, commit=commit)
        except _BrokenConnectionError:  # the server went away: a new connection, once
            try:
                return self._once(call, commit=commit)
            except _BrokenConnectionError as again:
                raise DatabaseError(f"connection lost twice: {again.cause}".strip()) from again.cause

    def _once(self, call: Callable[[SqlConnection], T], *, commit: bool) -> T:
        raw = self._acquire()
        try:
            answer = call(SqlConnection(raw, dialect=self.dialect))
            raw.commit() if commit else raw.rollback()
        except Exception as exc:
            broken = self._pool.is_broken(raw)
            if not broken:
                _quietly(raw.rollback)
            self._pool.release(raw, broken=broken)
            if broken:
                raise _BrokenConnectionError(exc) from exc
            if isinstance(exc, _driver_errors(self.dialect)):
                raise DatabaseError(f"{type(exc).__name__}: {exc}".strip()) from exc
            raise
        self._pool.release(raw, broken=False)
        return answer

    def _acquire(self) -> Any:
        failures: tuple[type[Exception], ...] = (TimeoutError, *_driver_errors(self.dialect))
        try:
            return self._pool.acquire()
        except failures as exc:
            raise DatabaseError(f"cannot connect: {type(exc).__name__}: {exc}".strip()) from exc


class DatabaseError(Exception):
    """The database failed a call (unreachable, timed out, or the driver raised); the message names the cause."""


def _driver_errors(dialect: Dialect) -> tuple[type[Exception], ...]:
    if dialect == "sqlite":
        import sqlite3  # loaded already: a SQLite connection was made with it

        return (sqlite3.Error,)
    import psycopg2  # loaded already: a PostgreSQL connection was made with it

    return (psycopg2.Error,)


class _BrokenConnectionError(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # the connection is released anyway; its error was the one raised
        return


class DriverPool:
    """Connections made by the driver itself (``sqlite3`` or ``psycopg2``): up to ``POOL_IDLE`` kept, newest first."""

    def __init__(self, connect: Callable[[], Any], *, dialect: Dialect) -> None:
        self.dialect = dialect
        self._connect = connect
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(POOL_MAX)

    def acquire(self) -> Any:
        """An idle connection that is still open, else a new one."""
        if not self._slots.acquire(timeout=POOL_WAIT_S):
            raise TimeoutError(f"no database connection free within {POOL_WAIT_S:g} s ({POOL_MAX} in use)")
        try:
            while True:
                with self._lock:
                    raw = self._idle.pop() if self._idle else None
                if raw is None:
                    return self._connect()
                if not self.is_broken(raw):
                    return raw
                _quietly(raw.close)
        except BaseException:
            self._slots.release()
            raise

    def release(self, raw: Any, *, broken: bool) -> None:
        """Keep the connection for the next call unless it broke or enough are idle."""
        try:
            with self._lock:
                if not broken and len(self._idle) < POOL_IDLE:
                    self._idle.append(raw)
                    return
            _quietly(raw.close)
        finally:
            self._slots.release()

    def is_broken(self, raw: Any) -> bool:
        """psycopg2 marks a connection whose server went away ``closed``; SQLite's never break."""
        return bool(getattr(raw, "closed", 0))

    def dispose(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for raw in idle:
            _quietly(raw.close)


def open_database(url: str) -> Database:
    """A pooled ``Database`` for ``sqlite:///path`` or ``postgresql[+psycopg2]://...`` (connects on first use)."""
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        path = sqlite_path(url)
        return Database(DriverPool(lambda: connect_sqlite(path), dialect="sqlite"))
    if scheme in ("postgresql", "postgresql+psycopg2", "postgres"):
        dsn = "postgresql://" + url.partition("://")[2]
        return Database(DriverPool(lambda: _connect_postgres(dsn), dialect="postgresql"))
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql+psycopg2://")


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL (created 0600 with its directory when missing); ``:memory:`` is refused."""
    path = unquote(urlsplit(url).path)[1:]  # sqlite:///relative, sqlite:////absolute
    if not path or path == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared: give a file, sqlite:///path/to/file")
    create_private_file(Path(path).expanduser())
    return path


def create_private_file(path: Path) -> None:
    """Create the database file (and its directory) readable by its owner only; an existing file keeps its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite's -wal/-shm follow the file's mode


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A SQLite connection usable from any one thread at a time, configured like every connection of ours."""
    import sqlite3  # only a SQLite deployment loads the driver (and libsqlite3, about 1 MB)

    raw = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
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
