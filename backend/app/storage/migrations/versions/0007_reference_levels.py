"""A symbol's raw reference prices next to its levels: ``support_levels.pivots`` and ``support_levels.volume_profile``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14

Mirrors ``app/storage/models.py``. Both are nullable JSON: rows published before this revision read back as
``None`` (no pivots, no volume profile served for those runs).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("pivots", "volume_profile")


def upgrade() -> None:
    """Add ``support_levels.pivots`` and ``support_levels.volume_profile``."""
    with op.batch_alter_table("support_levels") as table:
        for name in COLUMNS:
            table.add_column(sa.Column(name, sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Drop ``support_levels.pivots`` and ``support_levels.volume_profile``."""
    with op.batch_alter_table("support_levels") as table:
        for name in reversed(COLUMNS):
            table.drop_column(name)
