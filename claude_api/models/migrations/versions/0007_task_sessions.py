"""Create task_sessions: the Claude Code sessions the executor ran as tasks, with the project
and agent it records each under, which the transcript import and the hook then use too.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import claude_api.models.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_sessions",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.String(length=200), nullable=True),
        sa.Column("agent_name", sa.String(length=200), nullable=False),
        sa.Column("started_at", claude_api.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )


def downgrade() -> None:
    op.drop_table("task_sessions")
