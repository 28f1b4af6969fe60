"""Create the rollups (hour, day and month buckets, with and without model and status; duration
bins per name and project, per name and per kind; error counts) and the retention state; fold
the existing rows in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from claude_api.models import rollups
from claude_api.models.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NAME = sa.String(length=200)


def _key_columns(*, model: bool = False) -> list[sa.Column]:
    columns = [
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("project_key", NAME, nullable=False),
    ]
    if model:
        columns.append(sa.Column("model_key", NAME, nullable=False))
    return columns


_KEY = ["grain", "bucket_start", "kind", "name", "project_key"]


def _measure_table(name: str, *, model: bool) -> None:
    extra = ["model_key", "status"] if model else []
    op.create_table(
        name,
        *_key_columns(model=model),
        *([sa.Column("status", sa.String(length=16), nullable=False)] if model else []),
        *(
            sa.Column(column, sa.BigInteger(), nullable=False)
            for column in ("invocations", "completed", "failed", "cost_count")
        ),
        sa.Column("cost_sum", sa.Float(), nullable=False),
        sa.Column("duration_count", sa.BigInteger(), nullable=False),
        sa.Column("duration_sum", sa.Float(), nullable=False),
        *(
            sa.Column(column, sa.BigInteger(), nullable=False)
            for column in ("input_count", "input_sum", "output_count", "output_sum")
        ),
        sa.Column("first_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, *extra),
        sqlite_with_rowid=False,
    )


# The rollup tables of this revision, which a backfill fills (later revisions add others).
_ROLLUP_TABLES = (
    "usage_rollup", "usage_model_rollup", "usage_duration_bins", "usage_kind_duration_bins",
    "usage_name_duration_bins", "usage_error_rollup",
)  # fmt: skip


# The measures of this revision's rollup tables (later revisions add others).
_SUMMED = (
    "invocations", "completed", "failed", "cost_count", "cost_sum", "duration_count",
    "duration_sum", "input_count", "input_sum", "output_count", "output_sum",
)  # fmt: skip


def upgrade() -> None:
    _measure_table("usage_rollup", model=False)
    op.create_index("ix_usage_rollup_name", "usage_rollup", ["name", "grain", "bucket_start"])
    _measure_table("usage_model_rollup", model=True)
    op.create_table(
        "usage_duration_bins",
        *_key_columns(),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        # Led by the project: read only for questions about one project.
        sa.PrimaryKeyConstraint("grain", "project_key", "name", "bucket_start", "kind", "bin"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_kind_duration_bins",
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket_start", "kind", "bin"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_name_duration_bins",
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        # Led by the name: it serves one name's percentiles, and a page of names.
        sa.PrimaryKeyConstraint("grain", "name", "bucket_start", "kind", "bin"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_error_rollup",
        *_key_columns(),
        sa.Column("message_md5", sa.String(length=32), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, "message_md5"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "retention_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("raw_purged_before", UTCDateTime(timezone=True), nullable=True),
        sa.Column("rollups_purged_before", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for table in ("agent_usage", "skill_usage"):
        # Queries read running rows from the raw tables over whole ranges: keep them findable.
        op.create_index(
            f"ix_{table}_running",
            table,
            ["timestamp"],
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
    rollups.backfill(op.get_bind(), tables=_ROLLUP_TABLES, summed=_SUMMED)


def downgrade() -> None:
    for table in ("agent_usage", "skill_usage"):
        op.drop_index(f"ix_{table}_running", table_name=table)
    for table in (
        "retention_state", "usage_error_rollup", "usage_name_duration_bins",
        "usage_kind_duration_bins", "usage_duration_bins", "usage_model_rollup", "usage_rollup",
    ):  # fmt: skip
        op.drop_table(table)
