"""dead letters: accepted shadow jobs that were not stored, and pairs waiting to be scored

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pair_id", sa.String(length=36), nullable=False),
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("error", sa.Text(), nullable=True, comment="the reason, without request text"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dead_letters_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_dead_letters_pair_id"), ["pair_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letters_pair_id"))
        batch_op.drop_index(batch_op.f("ix_dead_letters_kind"))
    op.drop_table("dead_letters")
