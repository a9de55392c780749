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
- A connection serves one call at a time. ``read`` rolls back at the end, ``write`` commits; a connection that
  could not roll back, or whose call was interrupted, is dropped. A call that failed because its PostgreSQL
  connection broke (a restarted server) drops every idle connection and runs once more on a new one, so a restart
  costs no failed request; only idempotent statements run through here. Driver errors (and a full pool) surface as
  ``DatabaseError``; other errors of the call pass through unchanged. On a session's connection
  (``app.storage.db.sql_connection``) driver errors, fetching included, are raised as SQLAlchemy raises them.
- Where connections come from is a ``Pool``: ``app.storage.sql_drivers`` (the drivers themselves, pooled) for the
  API, an engine's pool in tests. Nothing connects at import time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, Protocol, TypeVar

import orjson

Dialect = Literal["sqlite", "postgresql"]
Translate = Callable[[Exception, str], Exception]  # (driver error, statement) -> the error to raise instead
T = TypeVar("T")
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
        names, fetched = self._fetch(statement, params)
        found = [dict(zip(names, row, strict=True)) for row in fetched]
        if table is not None:
            for row in found:
                self._decode(row, table)
        return found

    def tuples(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row as a plain tuple, undecoded (numbers and text only)."""
        return [tuple(row) for row in self._fetch(statement, params)[1]]

    def execute_many(self, statement: str, params: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement per parameter set (the caller's ``write`` commits)."""
        cursor = self.raw.cursor()
        try:
            cursor.executemany(self._text(statement), [self._bound(one) for one in params])
        except Exception as exc:
            raise self._translated(exc, statement) from exc
        finally:
            cursor.close()

    def _fetch(self, statement: str, params: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        """The column names and every row; a driver error while executing or fetching is translated."""
        cursor = self.raw.cursor()
        try:
            cursor.execute(self._text(statement), self._bound(params))
            return [column[0] for column in cursor.description], cursor.fetchall()
        except Exception as exc:
            raise self._translated(exc, statement) from exc
        finally:
            cursor.close()

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
        except _BrokenConnectionError:  # the server went away: its other idle connections are gone too
            self._pool.dispose()
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
            error = self._failed(raw, exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            self._pool.release(raw, broken=True)  # interrupted mid-call: never hand it out again
            raise
        self._pool.release(raw, broken=False)
        return answer

    def _failed(self, raw: Any, exc: Exception) -> Exception:
        """Release ``raw`` after ``exc``; the error to raise (``_BrokenConnectionError`` when the server went away)."""
        lost = self._pool.is_broken(raw)
        self._pool.release(raw, broken=lost or not _rolled_back(raw))
        if lost:
            return _BrokenConnectionError(exc)
        if isinstance(exc, _driver_errors(self.dialect)):
            return DatabaseError(f"{type(exc).__name__}: {exc}".strip())
        return exc

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


def _rolled_back(raw: Any) -> bool:
    try:
        raw.rollback()
    except Exception:  # a connection that cannot roll back is not handed out again
        return False
    return True


def quietly(action: Callable[[], object]) -> None:
    """Run ``action`` (a close), ignoring its failure: the connection is being dropped anyway."""
    try:
        action()
    except Exception:  # the connection is dropped anyway; its error was the one raised
        return
