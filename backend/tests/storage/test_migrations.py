"""Alembic migrations on SQLite and PostgreSQL: upgrade, current, check (drift and pending), downgrade.

The command line (``dantaro migrate`` and ``python migrate.py``) is tested in ``tests/cli/test_migrate.py``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.orm import Session

from app.domain import SupportLevels
from app.storage import migrate
from app.storage.codec import decode
from app.storage.db import make_engine
from app.storage.models import Base, SupportLevelsModel


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_cycle(empty_database_url: str) -> None:
    url = empty_database_url
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head() == "0007"
    assert _tables(url) == set(Base.metadata.tables)
    migrate.check(url)
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert _tables(url) == set()
    migrate.upgrade(url, "head")
    migrate.check(url)


def test_check_rejects_a_database_behind_head(empty_database_url: str) -> None:
    with pytest.raises(migrate.MigrationError, match="not head"):
        migrate.check(empty_database_url)


def test_check_rejects_drift_from_the_models(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE api_keys ADD COLUMN owner_email VARCHAR(200)"))
    finally:
        engine.dispose()
    with pytest.raises(migrate.MigrationError, match="owner_email"):
        migrate.check(empty_database_url)


def _insert_old_run(connection: Connection, *, symbols: int) -> None:
    """A succeeded run ``old`` of binance with ``symbols`` symbols, written the way an older revision stored it."""
    connection.execute(
        text(
            "INSERT INTO analysis_runs (run_id, exchange, status, started_at, symbols_total, symbols_ok, "
            "symbols_failed) VALUES ('old', 'binance', 'succeeded', '2022-10-10 00:00:00+00:00', :n, :n, 0)"
        ),
        {"n": symbols},
    )


def test_runs_from_before_0005_read_back_with_exchange_tickers(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0004")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            _insert_old_run(connection, symbols=0)
        migrate.upgrade(empty_database_url)
        with engine.connect() as connection:
            value = connection.execute(text("SELECT tickers_source FROM analysis_runs WHERE run_id = 'old'")).scalar()
    finally:
        engine.dispose()
    assert value == "exchange"


def test_levels_from_before_0007_read_back_without_pivots_or_profile(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0006")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            _insert_old_run(connection, symbols=1)
            connection.execute(
                text(
                    "INSERT INTO support_levels (run_id, symbol, calculation_method, data_points_count, levels) "
                    "VALUES ('old', 'BTC/USDT', 'levels_1d', 500, '[]')"
                )
            )
        migrate.upgrade(empty_database_url)
        with Session(engine) as session:
            row = session.get_one(SupportLevelsModel, ("old", "BTC/USDT"))
            columns = {column.key: getattr(row, column.key) for column in SupportLevelsModel.__table__.columns}
    finally:
        engine.dispose()
    levels = decode(SupportLevels, columns)
    assert (levels.pivots, levels.volume_profile) == (None, None) and levels.data_points_count == 500
