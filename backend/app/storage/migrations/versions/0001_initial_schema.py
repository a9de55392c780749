"""Initial schema: candles, analysis runs with their rows, worker heartbeats, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Mirrors ``app/storage/models.py`` exactly (``alembic check`` reports no drift on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _double(name: str, *, nullable: bool = False) -> sa.Column[float]:
    return sa.Column(name, sa.Float(precision=53), nullable=nullable)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["analysis_runs.run_id"], name=op.f(f"fk_{table}_run_id_analysis_runs"), ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "candles",
        sa.Column("exchange", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("open_time_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        *(_double(name) for name in ("open", "high", "low", "close", "volume")),
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", "open_time_ms", name=op.f("pk_candles")),
    )
    op.create_index("ix_candles_exchange_timeframe_open_time_ms", "candles", ["exchange", "timeframe", "open_time_ms"])
    op.create_table(
        "analysis_runs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("exchange", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _timestamp("started_at", nullable=False),
        *(_timestamp(name, nullable=True) for name in ("finished_at", "published_at", "generated_at", "data_as_of")),
        sa.Column("timeframe", sa.String(length=8), nullable=True),
        sa.Column("universe_size", sa.Integer(), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in ("symbols_total", "symbols_ok", "symbols_failed")),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_analysis_runs")),
    )
    op.create_index("ix_analysis_runs_exchange_published_at", "analysis_runs", ["exchange", "published_at"])
    _create_run_tables()
    _create_operational_tables()


def _create_run_tables() -> None:
    op.create_table(
        "recommendations",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        *(_double(f"{name}_score") for name in ("total", "technical", "volume", "volatility", "risk")),
        sa.Column("label", sa.String(length=16), nullable=False),
        *(_double(name) for name in ("current_price", "price_change_24h", "volume_24h")),
        sa.Column("details", sa.JSON(), nullable=False),
        _run_fk("recommendations"),
        sa.PrimaryKeyConstraint("run_id", "symbol", name=op.f("pk_recommendations")),
    )
    op.create_table(
        "support_levels",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        *(
            _double(f"{tier}_{side}", nullable=True)
            for side in ("support", "resistance")
            for tier in ("aggressive", "moderate", "conservative")
        ),
        sa.Column("calculation_method", sa.String(length=64), nullable=False),
        sa.Column("data_points_count", sa.Integer(), nullable=False),
        sa.Column("levels", sa.JSON(), nullable=False),
        _run_fk("support_levels"),
        sa.PrimaryKeyConstraint("run_id", "symbol", name=op.f("pk_support_levels")),
    )
    op.create_table(
        "market_status",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("market_trend", sa.String(length=32), nullable=False),
        sa.Column("market_sentiment", sa.String(length=32), nullable=False),
        _double("overall_score"),
        sa.Column("active_coins_count", sa.Integer(), nullable=False),
        _double("total_volume_24h"),
        _double("average_volatility"),
        *(sa.Column(name, sa.JSON(), nullable=False) for name in ("top_gainers", "top_losers")),
        *(sa.Column(name, sa.JSON(), nullable=False) for name in ("analysis_summary", "details")),
        _run_fk("market_status"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_market_status")),
    )


def _create_operational_tables() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _timestamp("started_at", nullable=False),
        _timestamp("last_beat_at", nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("current_run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeats")),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("rate_limit_per_min", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("revoked_at", nullable=True),
        _timestamp("last_used_at", nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in ("api_keys", "worker_heartbeats", "market_status", "support_levels", "recommendations"):
        op.drop_table(table)
    op.drop_index("ix_analysis_runs_exchange_published_at", table_name="analysis_runs")
    op.drop_table("analysis_runs")
    op.drop_index("ix_candles_exchange_timeframe_open_time_ms", table_name="candles")
    op.drop_table("candles")
