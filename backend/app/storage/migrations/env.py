"""Alembic environment: the URL comes from ``config.attributes["url"]`` (set by ``app.storage.migrate``) or,
when run through the ``alembic`` command, from ``get_settings().resolved_database_url`` — never from alembic.ini.

SQLite migrations run in batch mode (table copy) with foreign keys off for the duration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.storage.db import make_engine
from app.storage.models import Base


def _url() -> str:
    url = context.config.attributes.get("url")
    if url:
        return str(url)
    from app.config import get_settings

    return get_settings().resolved_database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations over a connection from our own engine factory (SQLite pragmas, PostgreSQL pool)."""
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
