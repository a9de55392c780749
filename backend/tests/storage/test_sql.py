"""The DB-API seam (``app.storage.sql``): its schema facts match the models, reads decode as the ORM does on both
backends, a PostgreSQL connection that broke costs a retry rather than a failed call, and driver errors are ours."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import JSON

from app.storage.api_keys import ApiKeyRepository
from app.storage.models import Base, UTCDateTime
from app.storage.publish import publish
from app.storage.queries import runs
from app.storage.queries.keys import list_keys
from app.storage.sql import TABLES, DatabaseError, SqlConnection, _pyformat
from app.storage.sql_drivers import open_database, sqlite_target
from tests.support.snapshots import MakeSnapshot
from tests.support.storage import StorageBackend


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_schema_facts_match_the_models(name: str) -> None:
    columns = Base.metadata.tables[name].columns
    assert TABLES[name].datetimes == {c.name for c in columns if isinstance(c.type, UTCDateTime)}
    assert TABLES[name].json == {c.name for c in columns if isinstance(c.type, JSON)}


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("WHERE a = :a AND b < :b_2", "WHERE a = %(a)s AND b < %(b_2)s"),
        ("WHERE a = :a OR a > :a", "WHERE a = %(a)s OR a > %(a)s"),
        ("WHERE name LIKE '5%'", "WHERE name LIKE '5%%'"),
    ],
)
def test_statements_are_rewritten_for_psycopg2(statement: str, expected: str) -> None:
    assert _pyformat(statement) == expected


def test_a_published_snapshot_reads_back_whole_through_its_own_pool(
    backend: StorageBackend, make_snapshot: MakeSnapshot
) -> None:
    snapshot = make_snapshot(run_id="run-sql")
    publish(snapshot, session_factory=backend.session_factory, cache=None)
    database = open_database(backend.url)
    try:
        assert database.read(lambda conn: runs.latest_snapshot(conn, exchange="binance")) == snapshot
        assert database.read(lambda conn: runs.latest_run_id(conn, exchange="binance")) == "run-sql"
        assert database.read(lambda conn: runs.latest_run_id(conn, exchange="binance", excluding="run-sql")) is None
    finally:
        database.dispose()


def test_times_bind_and_read_back_as_aware_utc_whatever_the_offset(backend: StorageBackend) -> None:
    created_at = datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    with backend.session_factory.begin() as session:
        key_id, _ = ApiKeyRepository(session).create(name="k", rate_limit_per_min=5, created_at=created_at)
    database = open_database(backend.url)
    seoul = timezone(timedelta(hours=9))
    try:
        (row,) = database.read(list_keys)
        assert row.created_at == created_at and row.created_at.tzinfo is UTC
        earlier = database.read(
            lambda conn: conn.rows(
                "SELECT key_id FROM api_keys WHERE created_at < :when", when=created_at.astimezone(seoul)
            )
        )
        later = database.read(
            lambda conn: conn.rows(
                "SELECT key_id FROM api_keys WHERE created_at < :when",
                when=(created_at + timedelta(microseconds=1)).astimezone(seoul),
            )
        )
        assert (earlier, later) == ([], [{"key_id": key_id}])
        with pytest.raises(ValueError, match="naive datetime"):
            database.read(lambda conn: conn.rows("SELECT 1 WHERE :t IS NULL", t=datetime(2026, 1, 1)))
    finally:
        database.dispose()


def test_driver_errors_surface_as_database_errors_and_the_call_can_run_again(backend: StorageBackend) -> None:
    database = open_database(backend.url)
    try:
        with pytest.raises(DatabaseError, match="no_such_table"):
            database.read(lambda conn: conn.rows("SELECT * FROM no_such_table"))
        assert database.read(lambda conn: conn.tuples("SELECT 1")) == [(1,)]
    finally:
        database.dispose()


@pytest.mark.postgres
def test_a_restarted_server_costs_a_retry_not_a_failed_read(postgres_migrated_url: str) -> None:
    database = open_database(postgres_migrated_url)
    try:
        held = database.read(
            lambda a: database.read(lambda b: database.read(lambda c: [_backend_pid(x) for x in (a, b, c)]))
        )
        admin = psycopg2.connect(postgres_migrated_url.replace("+psycopg2", ""))
        admin.autocommit = True
        with admin.cursor() as cursor:  # every connection of the pool dies, as in a restart
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        admin.close()
        assert len(set(held)) == 3
        assert database.read(_backend_pid) not in held  # the dead idle ones are dropped, one retry on a new one
        assert database.read(_backend_pid) not in held
    finally:
        database.dispose()


def _backend_pid(conn: SqlConnection) -> int:
    return int(conn.tuples("SELECT pg_backend_pid()")[0][0])


@pytest.mark.postgres
def test_an_unreachable_server_is_a_database_error_naming_the_cause() -> None:
    database = open_database("postgresql+psycopg2://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseError, match="cannot connect: OperationalError"):
        database.read(lambda conn: conn.tuples("SELECT 1"))


def test_a_new_sqlite_file_is_private_and_memory_or_other_schemes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dantaro.sqlite3"
    database = open_database(f"sqlite:///{path}")
    assert database.read(lambda conn: conn.tuples("SELECT 1")) == [(1,)]
    database.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match="in-memory SQLite"):
            open_database(url)
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'"):
        open_database("mysql://x@y/z")


def test_an_interrupted_call_gives_back_its_slot_and_drops_its_connection(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'db.sqlite3'}", max_connections=2)

    def interrupted(conn: SqlConnection) -> None:
        raise KeyboardInterrupt

    for _ in range(3):  # more than the pool's slots: a leaked slot would block the read below for 30 s
        with pytest.raises(KeyboardInterrupt):
            database.read(interrupted)
    assert database.read(lambda conn: conn.tuples("SELECT 1")) == [(1,)]
    database.dispose()


@pytest.mark.parametrize(
    ("url", "target", "uri"),
    [
        ("sqlite:///{dir}/plain.sqlite3", "{dir}/plain.sqlite3", False),
        ("sqlite:///{dir}/with#hash.sqlite3", "{dir}/with#hash.sqlite3", False),
        ("sqlite:///{dir}/with%20space.sqlite3", "{dir}/with space.sqlite3", False),
        ("sqlite:///file:{dir}/u.sqlite3?mode=rwc&uri=true", "file:{dir}/u.sqlite3?mode=rwc", True),
    ],
)
def test_sqlite_urls_open_the_file_sqlalchemy_opens(tmp_path: Path, url: str, target: str, uri: bool) -> None:
    assert sqlite_target(url.format(dir=tmp_path)) == (target.format(dir=tmp_path), uri)
