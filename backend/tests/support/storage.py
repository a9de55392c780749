"""The database a storage test runs on (see the ``backend`` fixture): SQLite or PostgreSQL, migrated and empty."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

from sqlalchemy import Engine, delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.storage.models import Base
from app.storage.sql import Database, DatabaseError, Dialect


@dataclass
class StorageBackend:
    """A migrated database for one test."""

    name: str
    url: str
    engine: Engine
    session_factory: sessionmaker[Session]

    @cached_property
    def database(self) -> Database:
        """The API's view of the same database (``app.storage.sql``), on the engine's connections."""
        return engine_database(self.engine)


def empty_tables(engine: Engine) -> None:
    """Delete every row of every table (children first), leaving the schema."""
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


def engine_database(engine: Engine) -> Database:
    """A ``Database`` (the API's seam) borrowing ``engine``'s pooled connections: the test's own engine."""
    return Database(_EnginePool(engine))


class _EnginePool:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.dialect = cast(Dialect, engine.dialect.name)

    def acquire(self) -> Any:
        try:
            return self._engine.raw_connection()
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot connect: {exc}") from exc

    def release(self, raw: Any, *, broken: bool) -> None:
        if broken:
            raw.invalidate()
        else:
            raw.close()  # back to the engine's pool

    def is_broken(self, raw: Any) -> bool:
        return bool(getattr(raw.driver_connection, "closed", 0))

    def dispose(self) -> None:
        return  # the engine's owner disposes it
