"""imports of captured traffic; each pair's source; primary latency may be not measured

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("use_case", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False, comment="file names, as given"),
        sa.Column(
            "state",
            sa.String(length=20),
            nullable=False,
            comment="running, interrupted or complete",
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "rate",
            sa.Float(),
            nullable=True,
            comment="requests/s the candidate was asked at (its latency is at this pace)",
        ),
        sa.Column("read", sa.Integer(), nullable=False, comment="records read"),
        sa.Column("stored", sa.Integer(), nullable=False, comment="records taken in"),
        sa.Column("skipped", sa.Integer(), nullable=False, comment="bad or errored records"),
        sa.Column(
            "failed",
            sa.Integer(),
            nullable=False,
            comment="of the skipped: records the capture marks as errors",
        ),
        sa.Column(
            "duplicates",
            sa.Integer(),
            nullable=False,
            comment="records already imported (same record key)",
        ),
        sa.Column(
            "errors", sa.JSON(), nullable=False, comment="the first problems, `file:line: reason`"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_imports_use_case_started_at", ["use_case", "started_at"], unique=False
        )
    with op.batch_alter_table("request_pairs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source",
                sa.String(length=20),
                server_default="live",
                nullable=False,
                comment="live or import",
            )
        )
        batch_op.add_column(
            sa.Column(
                "import_id",
                sa.String(length=40),
                nullable=True,
                comment="the import an imported pair is of",
            )
        )
        batch_op.create_foreign_key(
            op.f("fk_request_pairs_import_id_imports"),
            "imports",
            ["import_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            "ix_request_pairs_use_case_source", ["use_case", "source", "import_id"], unique=False
        )
        batch_op.alter_column(
            "primary_latency_ms",
            existing_type=sa.Float(),
            nullable=True,
            comment="NULL: not measured (an import that did not record it)",
        )


def downgrade() -> None:
    with op.batch_alter_table("request_pairs", schema=None) as batch_op:
        batch_op.alter_column(
            "primary_latency_ms", existing_type=sa.Float(), nullable=False, comment=None
        )
        batch_op.drop_index("ix_request_pairs_use_case_source")
        batch_op.drop_constraint(op.f("fk_request_pairs_import_id_imports"), type_="foreignkey")
        batch_op.drop_column("import_id")
        batch_op.drop_column("source")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_index("ix_imports_use_case_started_at")
    op.drop_table("imports")
