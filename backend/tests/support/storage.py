"""The database a storage test runs on (see the ``backend`` fixture): SQLite or PostgreSQL, migrated and empty."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from app.storage.models import Base


@dataclass(frozen=True)
class StorageBackend:
    """A migrated database for one test."""

    name: str
    url: str
    engine: Engine
    session_factory: sessionmaker[Session]


def empty_tables(engine: Engine) -> None:
    """Delete every row of every table (children first), leaving the schema."""
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))
