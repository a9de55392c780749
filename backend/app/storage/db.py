"""Engines and session factories for the two supported databases: SQLite (embedded) and PostgreSQL.

Invariants:
- SQLite engines create the file's parent directory and the file itself with mode 0600 (keys and data are private
  to the service user; an existing file keeps its mode), run in WAL mode with foreign keys enforced and a busy
  timeout, so the worker and API threads of one process (or two processes) can share one file.
- PostgreSQL engines use a small pool with ``pool_pre_ping`` so a restarted server costs one failed ping,
  not one failed request.
- Sessions do not expire objects on commit; repositories flush, the owner of the unit of work commits once.
Nothing here runs at import time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import Dialect as SqlDialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.storage.sql import Dialect, SqlConnection
from app.storage.sql_drivers import SQLITE_BUSY_TIMEOUT_MS, configure_sqlite, create_private_file

POSTGRES_POOL_SIZE = 5
POSTGRES_MAX_OVERFLOW = 5


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg2://...``) with our connection settings."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _make_sqlite_engine(url)
    if backend == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=POSTGRES_POOL_SIZE,
            max_overflow=POSTGRES_MAX_OVERFLOW,
            pool_recycle=1800,
        )
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql+psycopg2://")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(url: str) -> Iterator[Session]:
    """One session on a short-lived engine for ``url``: committed when the block ends, rolled back on an error."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


def _make_sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        create_private_file(Path(database).expanduser())
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    configure_sqlite(dbapi_connection)


def dialect_insert(session: Session, model: type[Any]) -> Any:
    """The dialect's ``insert()`` for ``model`` (supports ``on_conflict_do_*`` on SQLite and PostgreSQL)."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(model)
    raise ValueError(f"unsupported database dialect {name!r}: use SQLite or PostgreSQL")


def sql_connection(session: Session) -> SqlConnection:
    """The session's own DB-API connection (its transaction, pending changes flushed) for ``app.storage.sql`` reads."""
    session.flush()
    raw = session.connection().connection.driver_connection
    bind = session.get_bind()
    return SqlConnection(raw, dialect=_dialect(bind), errors=partial(_sqlalchemy_error, bind.dialect))


def _sqlalchemy_error(dialect: SqlDialect, exc: Exception, statement: str) -> Exception:
    """A driver error as SQLAlchemy would have raised it (``OperationalError``, ...): the worker handles those."""
    dbapi = dialect.loaded_dbapi
    if not isinstance(exc, dbapi.Error):
        return exc
    return DBAPIError.instance(statement, None, exc, dbapi.Error, dialect=dialect)


def _dialect(engine: Engine | Any) -> Dialect:
    name = engine.dialect.name
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database dialect {name!r}: use SQLite or PostgreSQL")
    return cast(Dialect, name)
