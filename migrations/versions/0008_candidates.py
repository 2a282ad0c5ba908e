"""several candidates per use case: pairs, verdicts, capacity runs and aggregates name theirs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every row stored before this revision belongs to a use case's one candidate, `default`.
_DEFAULT = sa.text("'default'")


def _has_column(table: str, column: str) -> bool:
    return column in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _aggregate_tables(with_candidate: bool) -> None:
    candidate = (
        [sa.Column("candidate", sa.String(length=64), nullable=False)] if with_candidate else []
    )
    keys = ["use_case", "candidate"] if with_candidate else ["use_case"]
    op.create_table(
        "score_aggregates",
        sa.Column("use_case", sa.String(length=200), nullable=False),
        *candidate,
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
            *keys, "series", "feature", "bucket", name=op.f("pk_score_aggregates")
        ),
    )
    op.create_table(
        "score_histograms",
        sa.Column("use_case", sa.String(length=200), nullable=False),
        *[sa.Column(c.name, c.type, nullable=False) for c in candidate],
        sa.Column("series", sa.String(length=220), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("bin", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            *keys, "series", "feature", "bin", name=op.f("pk_score_histograms")
        ),
    )


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it for a column with a constant default), never a batch
    # copy of the table: SQLite's DROP TABLE of the old copy would cascade to the scores.
    if not _has_column("request_pairs", "candidate_name"):  # a SQLite downgrade keeps it
        op.add_column(
            "request_pairs",
            sa.Column(
                "candidate_name",
                sa.String(length=64),
                server_default=_DEFAULT,
                nullable=False,
                comment="which candidate answered",
            ),
        )
    for table in ("decisions", "capacity_runs"):
        op.add_column(
            table,
            sa.Column("candidate", sa.String(length=64), server_default=_DEFAULT, nullable=False),
        )
    # The aggregates are derived data: rebuilt keyed by candidate rather than re-keyed in place.
    op.drop_table("score_histograms")
    op.drop_table("score_aggregates")
    _aggregate_tables(with_candidate=True)
    from storage.aggregates import rebuild_all

    rebuild_all(op.get_bind())


def downgrade() -> None:
    op.drop_table("score_histograms")
    op.drop_table("score_aggregates")
    _aggregate_tables(with_candidate=False)
    for table in ("capacity_runs", "decisions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("candidate")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_column("request_pairs", "candidate_name")
    # On SQLite the column stays (its default fits the older code): dropping it means copying
    # the table, and dropping the old copy would cascade to every score and noise re-ask.
