"""rollout state and events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollout_states",
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column(
            "percent",
            sa.Float(),
            nullable=False,
            comment="share of live traffic to the candidate",
        ),
        sa.Column(
            "since", sa.DateTime(timezone=True), nullable=False, comment="when this step began"
        ),
        sa.PrimaryKeyConstraint("use_case", name=op.f("pk_rollout_states")),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "kind",
            sa.String(length=30),
            nullable=False,
            comment="advance, rollback, auto_rollback or verdict_change",
        ),
        sa.Column(
            "actor",
            sa.String(length=200),
            nullable=False,
            comment="token name, or `switchover`",
        ),
        sa.Column("from_percent", sa.Float(), nullable=False),
        sa.Column("to_percent", sa.Float(), nullable=False),
        sa.Column(
            "verdict", sa.String(length=30), nullable=True, comment="the verdict at the time"
        ),
        sa.Column("previous_verdict", sa.String(length=30), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_events")),
    )
    with op.batch_alter_table("rollout_events", schema=None) as batch_op:
        batch_op.create_index("ix_rollout_events_use_case_at", ["use_case", "at"], unique=False)
    op.create_table(
        "live_counts",
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.String(length=40),
            nullable=False,
            comment="candidate, broken or fallback_<reason>",
        ),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "minute", "outcome", name=op.f("pk_live_counts")),
    )


def downgrade() -> None:
    op.drop_table("live_counts")
    with op.batch_alter_table("rollout_events", schema=None) as batch_op:
        batch_op.drop_index("ix_rollout_events_use_case_at")
    op.drop_table("rollout_events")
    op.drop_table("rollout_states")
