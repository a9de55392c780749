"""Per-horizon scores: the horizon, probability and scores of each recommendation, each run's models, ``model_fits``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Mirrors ``app/storage/models.py``. Columns added to tables that may hold rows get server defaults (an empty JSON
object, an empty string, 0), so runs published before this revision still read back (as one unnamed horizon).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY_JSON_OBJECT = sa.text("'{}'")


def upgrade() -> None:
    """Add the per-horizon columns and create ``model_fits``."""
    with op.batch_alter_table("recommendations") as table:
        table.add_column(sa.Column("horizon", sa.String(length=16), nullable=False, server_default=""))
        table.add_column(sa.Column("probability_outperform", sa.Float(precision=53), nullable=True))
        table.add_column(sa.Column("calibration_samples", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("scores_by_horizon", sa.JSON(), nullable=False, server_default=EMPTY_JSON_OBJECT))
    with op.batch_alter_table("analysis_runs") as table:
        table.add_column(sa.Column("models", sa.JSON(), nullable=False, server_default=EMPTY_JSON_OBJECT))
        table.add_column(sa.Column("default_horizon", sa.String(length=16), nullable=False, server_default=""))
    op.create_table(
        "model_fits",
        sa.Column("exchange", sa.String(length=64), nullable=False),
        sa.Column("horizon", sa.String(length=16), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "horizon", name=op.f("pk_model_fits")),
    )


def downgrade() -> None:
    """Drop ``model_fits`` and the per-horizon columns."""
    op.drop_table("model_fits")
    with op.batch_alter_table("analysis_runs") as table:
        table.drop_column("default_horizon")
        table.drop_column("models")
    with op.batch_alter_table("recommendations") as table:
        table.drop_column("scores_by_horizon")
        table.drop_column("calibration_samples")
        table.drop_column("probability_outperform")
        table.drop_column("horizon")
