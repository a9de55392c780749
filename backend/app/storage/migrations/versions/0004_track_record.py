"""The track record: ``run_scores`` (one run scored at one horizon) and ``symbol_outcomes`` (each call's outcome).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Mirrors ``app/storage/models.py``. Both tables reference ``analysis_runs`` with ON DELETE CASCADE, so retention's
deletion of a run deletes its scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _double(name: str, *, nullable: bool = False) -> sa.Column[float]:
    return sa.Column(name, sa.Float(precision=53), nullable=nullable)


def _integer(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _key_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("horizon", sa.String(length=16), nullable=False),
    ]


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["analysis_runs.run_id"], name=op.f(f"fk_{table}_run_id_analysis_runs"), ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create ``run_scores`` and ``symbol_outcomes`` with their indexes."""
    op.create_table(
        "run_scores",
        *_key_columns(),
        sa.Column("exchange", sa.String(length=64), nullable=False),
        _integer("candles"),
        *(sa.Column(name, sa.DateTime(timezone=True), nullable=False) for name in ("as_of", "window_end", "scored_at")),
        _integer("symbols"),
        sa.Column("excluded", sa.JSON(), nullable=False),
        *_scores(""),
        *_scores("random_"),
        _run_fk("run_scores"),
        sa.PrimaryKeyConstraint("run_id", "horizon", name=op.f("pk_run_scores")),
    )
    op.create_index("ix_run_scores_exchange_horizon_as_of", "run_scores", ["exchange", "horizon", "as_of"])
    op.create_table(
        "symbol_outcomes",
        *_key_columns(),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        _double("score"),
        _integer("rank"),
        *(_double(name, nullable=True) for name in _OUTCOME_FIGURES),
        _run_fk("symbol_outcomes"),
        sa.PrimaryKeyConstraint("run_id", "horizon", "symbol", name=op.f("pk_symbol_outcomes")),
    )
    op.create_index(
        "ix_symbol_outcomes_exchange_symbol_horizon_as_of",
        "symbol_outcomes",
        ["exchange", "symbol", "horizon", "as_of"],
    )


_OUTCOME_FIGURES = ("probability_outperform", "forward_return", "excess_log_return", "percentile")


def _scores(prefix: str) -> list[sa.Column[Any]]:
    """The scored figures, once for the served calls (no prefix) and once for the random baseline (``random_``)."""
    return [
        _double(f"{prefix}ic", nullable=True),
        sa.Column(f"{prefix}labels", sa.JSON(), nullable=False),
        _double(f"{prefix}top5_excess", nullable=True),
        _double(f"{prefix}top10_excess", nullable=True),
        *(_integer(f"{prefix}levels_{name}") for name in ("judged", "touched", "bounced")),
    ]


def downgrade() -> None:
    """Drop the track-record tables."""
    op.drop_index("ix_symbol_outcomes_exchange_symbol_horizon_as_of", table_name="symbol_outcomes")
    op.drop_table("symbol_outcomes")
    op.drop_index("ix_run_scores_exchange_horizon_as_of", table_name="run_scores")
    op.drop_table("run_scores")
