"""Create usage_name_rollup, the rollups per (kind, name) over every project, filled from
usage_rollup (which holds every finished invocation, purged raw rows included).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from claude_api.models.tables import NAME
from claude_api.models.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_SUMMED = (
    "invocations", "completed", "failed", "cost_count", "cost_sum", "duration_count",
    "duration_sum", "input_count", "input_sum", "output_count", "output_sum",
    "cache_read_count", "cache_read_sum", "cache_creation_count", "cache_creation_sum",
)  # fmt: skip
_FLOATS = ("cost_sum", "duration_sum")
_ADDED_LATER = ("cache_read_count", "cache_read_sum", "cache_creation_count", "cache_creation_sum")


def upgrade() -> None:
    op.create_table(
        "usage_name_rollup",
        *(
            sa.Column(
                column,
                sa.Float() if column in _FLOATS else sa.BigInteger(),
                nullable=False,
                server_default="0" if column in _ADDED_LATER else None,
            )
            for column in _SUMMED
        ),
        sa.Column("first_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket_start", "kind", "name"),
        sqlite_with_rowid=False,
    )
    summed = ", ".join(_SUMMED)
    sums = ", ".join(f"sum({column})" for column in _SUMMED)
    op.execute(
        f"INSERT INTO usage_name_rollup (grain, bucket_start, kind, name, {summed}, "
        f"first_seen, last_seen) SELECT grain, bucket_start, kind, name, {sums}, "
        "min(first_seen), max(last_seen) FROM usage_rollup GROUP BY grain, bucket_start, kind, "
        "name"
    )


def downgrade() -> None:
    op.drop_table("usage_name_rollup")
