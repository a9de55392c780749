"""Where a run's 24h statistics came from: ``analysis_runs.tickers_source`` (``exchange`` or ``candles``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Mirrors ``app/storage/models.py``. Runs published before this revision read back as ``exchange`` (the server
default): until then a run whose tickers call failed was not published.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``analysis_runs.tickers_source``."""
    with op.batch_alter_table("analysis_runs") as table:
        table.add_column(sa.Column("tickers_source", sa.String(length=16), nullable=False, server_default="exchange"))


def downgrade() -> None:
    """Drop ``analysis_runs.tickers_source``."""
    with op.batch_alter_table("analysis_runs") as table:
        table.drop_column("tickers_source")
