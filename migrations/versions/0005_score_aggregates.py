"""incremental score aggregates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "score_aggregates",
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column("series", sa.String(length=220), nullable=False, comment="metric or derived"),
        sa.Column("feature", sa.String(length=200), nullable=False, comment="'' when untagged"),
        sa.Column(
            "bucket",
            sa.BigInteger(),
            nullable=False,
            comment="10-minute periods since 1970 of the pairs' arrival",
        ),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("nonzero", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("total_sq", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "use_case", "series", "feature", "bucket", name=op.f("pk_score_aggregates")
        ),
    )
    op.create_table(
        "score_histograms",
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column("series", sa.String(length=220), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("bin", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "use_case", "series", "feature", "bin", name=op.f("pk_score_histograms")
        ),
    )
    # Existing scores are folded in by 0008, which rebuilds these tables keyed by candidate
    # (the code that fills them is the current one, for the current columns).


def downgrade() -> None:
    op.drop_table("score_histograms")
    op.drop_table("score_aggregates")
