"""Published runs as readers see them: the newest run id of an exchange and whole snapshots.

Invariants:
- Only runs with ``published_at`` set are ever returned; newest means greatest ``(published_at, run_id)``.
- A snapshot is rebuilt from its run row and its rows by the one typed decoder (``codec.decode``): recommendations
  ordered by (rank, symbol); a run whose rows do not decode raises ``ValueError`` naming the run.
"""

from __future__ import annotations

from typing import Any

from app.domain import Snapshot
from app.storage.codec import decode
from app.storage.sql import TABLES, SqlConnection

_PUBLISHED = "FROM analysis_runs WHERE exchange = :exchange AND published_at IS NOT NULL"
_NEWEST = " ORDER BY published_at DESC, run_id DESC LIMIT 1"


def latest_run_id(conn: SqlConnection, *, exchange: str, excluding: str | None = None) -> str | None:
    """The run id of the newest published snapshot of the exchange (other than ``excluding``), or None."""
    other = "" if excluding is None else " AND run_id <> :excluding"
    params = {"exchange": exchange} if excluding is None else {"exchange": exchange, "excluding": excluding}
    rows = conn.tuples(f"SELECT run_id {_PUBLISHED}{other}{_NEWEST}", **params)
    return str(rows[0][0]) if rows else None


def latest_snapshot(conn: SqlConnection, *, exchange: str) -> Snapshot | None:
    """The newest published snapshot of the exchange, or None."""
    runs = conn.rows(f"SELECT * {_PUBLISHED}{_NEWEST}", table=TABLES["analysis_runs"], exchange=exchange)
    return _rebuild(conn, runs[0]) if runs else None


def published_snapshot(conn: SqlConnection, *, run_id: str) -> Snapshot | None:
    """The snapshot the run published, or None when the run is unknown or was not published."""
    runs = conn.rows(
        "SELECT * FROM analysis_runs WHERE run_id = :run_id AND published_at IS NOT NULL",
        table=TABLES["analysis_runs"],
        run_id=run_id,
    )
    return _rebuild(conn, runs[0]) if runs else None


def _rebuild(conn: SqlConnection, run: dict[str, Any]) -> Snapshot:
    run_id = run["run_id"]
    run["recommendations"] = _rows(conn, "recommendations", run_id, order=" ORDER BY rank, symbol")
    run["levels"] = {row["symbol"]: row for row in _rows(conn, "support_levels", run_id)}
    market = _rows(conn, "market_status", run_id)
    if not market:
        raise ValueError(f"published run {run_id} does not rebuild a snapshot: its market_status row is missing")
    run["market"] = market[0]
    try:
        return decode(Snapshot, run)
    except ValueError as exc:
        raise ValueError(f"published run {run_id} does not rebuild a snapshot: {exc}") from exc


def _rows(conn: SqlConnection, table: str, run_id: str, *, order: str = "") -> list[dict[str, Any]]:
    return conn.rows(f"SELECT * FROM {table} WHERE run_id = :run_id{order}", table=TABLES[table], run_id=run_id)
