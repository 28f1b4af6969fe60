"""Create data_version, the token of the usage data's state that cached answers are keyed by,
and usage_kind_rollup, the rollups per kind only, filled from usage_rollup (which holds every
finished invocation, purged raw rows included).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:00:00.000000
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from claude_api.models.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SUMMED = (
    "invocations", "completed", "failed", "cost_count", "cost_sum", "duration_count",
    "duration_sum", "input_count", "input_sum", "output_count", "output_sum",
)  # fmt: skip
_FLOATS = ("cost_sum", "duration_sum")


def upgrade() -> None:
    table = op.create_table(
        "data_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "token": secrets.randbits(63)}])
    op.create_table(
        "usage_kind_rollup",
        *(
            sa.Column(column, sa.Float() if column in _FLOATS else sa.BigInteger(), nullable=False)
            for column in _SUMMED
        ),
        sa.Column("first_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket_start", "kind"),
        sqlite_with_rowid=False,
    )
    summed = ", ".join(_SUMMED)
    sums = ", ".join(f"sum({column})" for column in _SUMMED)
    op.execute(
        f"INSERT INTO usage_kind_rollup (grain, bucket_start, kind, {summed}, first_seen, "
        f"last_seen) SELECT grain, bucket_start, kind, {sums}, min(first_seen), max(last_seen) "
        "FROM usage_rollup GROUP BY grain, bucket_start, kind"
    )


def downgrade() -> None:
    op.drop_table("usage_kind_rollup")
    op.drop_table("data_version")
