"""Job claims: one row per (job, slot) so that each scheduled run happens once across worker processes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Mirrors ``JobClaimModel`` in ``app/storage/models.py`` (``alembic check`` reports no drift on SQLite and
PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``job_claims`` and its index on ``claimed_at`` (retention prunes by it)."""
    op.create_table(
        "job_claims",
        sa.Column("job", sa.String(length=128), nullable=False),
        sa.Column("slot", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", "slot", name=op.f("pk_job_claims")),
    )
    op.create_index("ix_job_claims_claimed_at", "job_claims", ["claimed_at"])


def downgrade() -> None:
    """Drop ``job_claims``."""
    op.drop_index("ix_job_claims_claimed_at", table_name="job_claims")
    op.drop_table("job_claims")
