"""privacy: text hashes for store_text false

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request_pairs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "text_stored",
                sa.Boolean(),
                server_default=sa.true(),
                nullable=False,
                comment="false under `store_text: false`: no request, answer or error text, "
                "only hashes",
            )
        )
        batch_op.add_column(sa.Column("primary_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("candidate_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("noise_reasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("noise_reasks", schema=None) as batch_op:
        batch_op.drop_column("sha256")
    with op.batch_alter_table("request_pairs", schema=None) as batch_op:
        batch_op.drop_column("candidate_sha256")
        batch_op.drop_column("primary_sha256")
        batch_op.drop_column("text_stored")
