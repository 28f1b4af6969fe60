"""Create rollup_day_starts: the day grains, besides UTC days, that the measure rollups keep
(the days of the time zones the dashboard is read in). It starts empty; the server adds the
grains of its time zones, and their rows, when it starts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_MEASURE_TABLES = ("usage_rollup", "usage_model_rollup", "usage_name_rollup", "usage_kind_rollup")


def upgrade() -> None:
    op.create_table(
        "rollup_day_starts",
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("start_hour", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grain"),
    )


def downgrade() -> None:
    for table in _MEASURE_TABLES:
        op.execute(f"DELETE FROM {table} WHERE grain NOT IN ('month', 'day', 'hour')")
    op.drop_table("rollup_day_starts")
