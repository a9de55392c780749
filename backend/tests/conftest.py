"""Shared fixtures: real databases (SQLite file, throwaway PostgreSQL database), real caches (in-process, Redis
under a throwaway key prefix), the bundled real candles, and Snapshots built from them.

Services come from ``DANTARO_TEST_POSTGRES_URL`` (admin URL; a ``dantaro_test_<hex>`` database is created and
dropped) and ``DANTARO_TEST_REDIS_URL``. An unreachable service skips its tests, unless
``DANTARO_REQUIRE_SERVICES=1``, then they fail.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache as memoize
from pathlib import Path

import psycopg2
import pytest
import redis
from sqlalchemy import Engine, delete
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app import logging as app_logging
from app.config import BUNDLED_DATA_DIR
from app.domain import (
    Candle,
    Label,
    Level,
    MarketStatus,
    Recommendation,
    Snapshot,
    SupportLevels,
    ms_to_datetime,
    timeframe_ms,
    utc_now,
)
from app.storage import migrate
from app.storage.cache import MemoryCache, RedisCache, SnapshotCache, make_redis
from app.storage.db import make_engine, make_session_factory
from app.storage.models import Base
from tests.support.api import Database, migrated_database
from tests.support.services import unavailable

app_logging.CACHE_LOGGERS = False  # commands run in-process must not hide later tests' logs from capture_logs

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
SNAPSHOT_BASES = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA")
SNAPSHOT_AS_OF_MS = 1_664_582_400_000  # 2022-10-01 00:00 UTC, inside the bundled 1h and 1d history


# --- PostgreSQL -------------------------------------------------------------------------------------------


def _admin_url() -> str:
    return os.environ.get("DANTARO_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _admin_dsn() -> str:
    return make_url(_admin_url()).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin_execute(sql: str) -> None:
    connection = psycopg2.connect(_admin_dsn(), connect_timeout=3)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@memoize
def _postgres_problem() -> str | None:
    try:
        _admin_execute("SELECT 1")
    except psycopg2.Error as exc:
        return f"PostgreSQL at {make_url(_admin_url()).render_as_string()} unreachable: {str(exc).strip()}"
    return None


@pytest.fixture(scope="session")
def postgres_database_factory() -> Iterator[Callable[[], str]]:
    """Creates throwaway PostgreSQL databases (URL returned), all dropped at session end."""
    created: list[str] = []

    def create() -> str:
        problem = _postgres_problem()
        if problem:
            unavailable(problem)
        name = f"dantaro_test_{secrets.token_hex(6)}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)

    yield create
    for name in created:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_migrated_url(postgres_database_factory: Callable[[], str]) -> str:
    """One migrated PostgreSQL database shared by the session (tables emptied before each test)."""
    url = postgres_database_factory()
    migrate.upgrade(url)
    return url


# --- SQLite and the parametrized backends ------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy (migrating once keeps the suite fast)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@dataclass(frozen=True)
class StorageBackend:
    """A migrated database for one test."""

    name: str
    url: str
    engine: Engine
    session_factory: sessionmaker[Session]


def _empty_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    """A migrated, empty database on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "db" / "dantaro.sqlite3"
        path.parent.mkdir()
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_migrated_url")
    engine = make_engine(url)
    if request.param == "postgres":
        _empty_tables(engine)
    try:
        yield StorageBackend(request.param, url, engine, make_session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a brand-new, never-migrated database on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh' / 'dantaro.sqlite3'}"
    factory: Callable[[], str] = request.getfixturevalue("postgres_database_factory")
    return factory()


# --- Redis and the parametrized caches ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis URL."""
    return os.environ.get("DANTARO_TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client for the test Redis (skips or fails when unreachable)."""
    client = make_redis(redis_url, timeout_s=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable(f"Redis at {redis_url} unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A throwaway key prefix; every key under it is deleted afterwards."""
    prefix = f"dantaro_test_{secrets.token_hex(6)}"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache(request: pytest.FixtureRequest) -> SnapshotCache:
    """An empty snapshot cache: in-process and Redis."""
    if request.param == "memory":
        return MemoryCache()
    client: redis.Redis = request.getfixturevalue("redis_client")
    return RedisCache(client, prefix=request.getfixturevalue("redis_prefix"), ttl_s=300)


# --- Real candles and snapshots built from them ------------------------------------------------------------


@memoize
def _bundled(base: str, timeframe: str) -> tuple[Candle, ...]:
    path = BUNDLED_DATA_DIR / timeframe / f"{base}_USDT-{timeframe}.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    return tuple(Candle(int(row[0]), *(float(value) for value in row[1:6])) for row in rows)


@pytest.fixture(scope="session")
def bundled_candles() -> Callable[[str, str], tuple[Candle, ...]]:
    """``load(base, timeframe)``: every bundled real Binance candle of ``BASE/USDT``, ascending."""
    return _bundled


def _closed(base: str, timeframe: str, as_of_ms: int) -> tuple[Candle, ...]:
    step = timeframe_ms(timeframe)
    return tuple(candle for candle in _bundled(base, timeframe) if candle.open_time_ms + step <= as_of_ms)


def _levels(symbol: str, daily: Sequence[Candle], close: float) -> SupportLevels:
    def low(days: int) -> float:
        return min(candle.low for candle in daily[-days:])

    def high(days: int) -> float:
        return max(candle.high for candle in daily[-days:])

    lowest = min(daily[-30:], key=lambda candle: candle.low)
    levels = (
        Level(
            lowest.low,
            "support",
            0.8,
            ("swing_low", "1d"),
            2,
            ms_to_datetime(lowest.open_time_ms),
            (lowest.low - close) / close * 100,
        ),
        Level(high(90), "resistance", 0.5, ("swing_high",), 1, None, (high(90) - close) / close * 100),
    )
    return SupportLevels(
        symbol, low(7), low(30), low(90), high(7), high(30), None, "swing_extremes", len(daily), levels
    )


def _recommendation(symbol: str, hourly: Sequence[Candle]) -> Recommendation:
    last, day = hourly[-1], hourly[-24:]
    low, high = min(c.low for c in day), max(c.high for c in day)
    technical = (last.close - low) / (high - low) if high > low else 0.5
    volatility = min(1.0, (high - low) / last.close * 10)
    total = (technical + (1 - volatility)) / 2
    label = Label.BUY if total >= 0.6 else Label.SELL if total < 0.4 else Label.HOLD
    return Recommendation(
        symbol=symbol,
        rank=0,
        total_score=total,
        technical_score=technical,
        volume_score=0.5,
        volatility_score=volatility,
        risk_score=1 - volatility,
        label=label,
        current_price=last.close,
        price_change_24h=(last.close / hourly[-25].close - 1) * 100,
        volume_24h=sum(c.close * c.volume for c in day),
        details={"high_24h": high, "low_24h": low, "candles": len(hourly), "notes": ["from bundled data"]},
    )


def build_snapshot(
    *, run_id: str, as_of_ms: int = SNAPSHOT_AS_OF_MS, exchange: str = "binance", bases: Sequence[str] = SNAPSHOT_BASES
) -> Snapshot:
    """A Snapshot whose every number comes from the bundled candles closed by ``as_of_ms``."""
    hourly = {f"{base}/USDT": _closed(base, "1h", as_of_ms)[-200:] for base in bases}
    unranked = sorted(
        (_recommendation(symbol, candles) for symbol, candles in hourly.items()), key=lambda rec: -rec.total_score
    )
    recommendations = tuple(replace(rec, rank=rank) for rank, rec in enumerate(unranked, start=1))
    levels = {sym: _levels(sym, _closed(sym.split("/")[0], "1d", as_of_ms), hourly[sym][-1].close) for sym in hourly}
    by_change = sorted(recommendations, key=lambda rec: -rec.price_change_24h)
    mean_change = sum(rec.price_change_24h for rec in recommendations) / len(recommendations)
    market = MarketStatus(
        market_trend="bullish" if mean_change > 0 else "bearish",
        market_sentiment="greed" if mean_change > 0 else "fear",
        overall_score=sum(rec.total_score for rec in recommendations) / len(recommendations),
        active_coins_count=len(recommendations),
        total_volume_24h=sum(rec.volume_24h for rec in recommendations),
        average_volatility=sum(rec.volatility_score for rec in recommendations) / len(recommendations),
        top_gainers=tuple((rec.symbol, rec.price_change_24h) for rec in by_change[:3]),
        top_losers=tuple((rec.symbol, rec.price_change_24h) for rec in by_change[::-1][:3]),
        analysis_summary={"mean_change_24h": mean_change, "labels": sorted({rec.label.value for rec in by_change})},
        details={"benchmark": "BTC/USDT", "nested": {"timeframes": ["1h", "1d"]}},
    )
    last_close_ms = max(candles[-1].open_time_ms for candles in hourly.values()) + timeframe_ms("1h")
    return Snapshot(
        run_id=run_id,
        exchange=exchange,
        timeframe="1h",
        data_as_of=ms_to_datetime(last_close_ms),
        generated_at=utc_now(),
        universe_size=len(bases) + 1,
        recommendations=recommendations,
        levels=levels,
        market=market,
        errors={"LUNA/USDT": "not in the bundled history"},
    )


@pytest.fixture
def make_snapshot() -> Callable[..., Snapshot]:
    """``make_snapshot(run_id=..., as_of_ms=..., exchange=..., bases=...)`` → a Snapshot from real candles."""
    return build_snapshot


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database for API tests (``api_support.Database``: publish snapshots, create keys)."""
    with migrated_database(tmp_path) as db:
        yield db
