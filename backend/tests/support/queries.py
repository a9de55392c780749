"""Reading a database the way an operator would, with plain SQL (for tests of real processes).

Candle open times are epoch milliseconds.
"""

from __future__ import annotations

import itertools

from sqlalchemy import Engine, text

from app.storage.db import make_engine


def select_rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    """Every row ``sql`` returns on ``engine``."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def query(database_url: str, sql: str) -> list[tuple[object, ...]]:
    """Every row ``sql`` returns on the database at ``database_url`` (a short-lived engine)."""
    engine = make_engine(database_url)
    try:
        return select_rows(engine, sql)
    finally:
        engine.dispose()


def hourly_open_times(database_url: str) -> dict[str, list[int]]:
    """Symbol → open times (ms, ascending, duplicates kept) of every stored 1h candle."""
    sql = "SELECT symbol, open_time_ms FROM candles WHERE timeframe = '1h' ORDER BY symbol, open_time_ms"
    by_symbol: dict[str, list[int]] = {}
    for symbol, open_ms in query(database_url, sql):
        by_symbol.setdefault(str(symbol), []).append(int(str(open_ms)))
    return by_symbol


def open_time_steps(open_times: list[int]) -> set[int]:
    """The distinct differences between consecutive open times ({3_600_000} for a whole hourly series)."""
    return {later - earlier for earlier, later in itertools.pairwise(open_times)}
