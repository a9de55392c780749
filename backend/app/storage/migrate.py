"""Schema migrations in code: Alembic's commands over ``app/storage/migrations`` for a given database URL.

Invariants: the URL is passed explicitly (never read from alembic.ini); every Alembic failure, a schema that
differs from ``models.py`` and a database behind ``head`` all raise ``MigrationError`` with a readable message.
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from app.storage.db import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class MigrationError(Exception):
    """A migration command failed, or the schema is not at ``head`` / not what the models describe."""


def make_config(url: str) -> Config:
    """An Alembic ``Config`` for our migrations folder and ``url``; Alembic's own messages are not printed."""
    config = Config(stdout=io.StringIO())  # the commands print one line of their own
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``."""
    _run(command.upgrade, make_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` drops everything)."""
    _run(command.downgrade, make_config(url), revision)


def head() -> str:
    """The newest revision in the migrations folder."""
    revision = ScriptDirectory.from_config(make_config("sqlite://")).get_current_head()
    if revision is None:
        raise MigrationError("the migrations folder has no revisions")
    return revision


def current(url: str) -> str | None:
    """The database's current revision, or None if it was never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def require_head(url: str) -> None:
    """Raise ``MigrationError`` with the fix when the database is not migrated to ``head``."""
    revision, expected = current(url), head()
    if revision != expected:
        raise MigrationError(
            f"database is at revision {revision or 'none'} but this version needs {expected}: "
            "run `dantaro migrate upgrade` (or `python migrate.py upgrade`) first"
        )


def check(url: str) -> None:
    """Raise ``MigrationError`` unless the database is at ``head`` and matches the models."""
    revision = current(url)
    if revision != head():
        raise MigrationError(f"database is at revision {revision or 'none'}, not head {head()}: run upgrade")
    _run(command.check, make_config(url))


def _run(function: object, *args: object) -> None:
    assert callable(function)
    try:
        function(*args)
    except CommandError as exc:
        raise MigrationError(str(exc)) from exc
