"""The database a storage test runs on (see the ``backend`` fixture): SQLite or PostgreSQL, migrated and empty."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from app.storage.db import engine_database
from app.storage.models import Base
from app.storage.sql import Database


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
