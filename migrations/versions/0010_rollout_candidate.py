"""rollout: which candidate takes the live traffic (`--candidate` on advance)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: the use case's lead candidate (`rollout.candidate`, or the first listed), as before
    with op.batch_alter_table("rollout_states") as batch:
        batch.add_column(
            sa.Column(
                "candidate",
                sa.String(length=64),
                nullable=True,
                comment="the candidate taking live traffic; NULL: the lead one",
            )
        )
    with op.batch_alter_table("rollout_events") as batch:
        batch.add_column(
            sa.Column(
                "candidate",
                sa.String(length=64),
                nullable=True,
                comment="the candidate the change moved; NULL: the lead one",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("rollout_events") as batch:
        batch.drop_column("candidate")
    with op.batch_alter_table("rollout_states") as batch:
        batch.drop_column("candidate")
