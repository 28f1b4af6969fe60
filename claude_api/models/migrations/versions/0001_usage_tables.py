"""Create the usage tables agent_usage and skill_usage.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 00:54:01.316046
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import claude_api.models.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("project_id", sa.String(length=200), nullable=True),
        sa.Column("timestamp", claude_api.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", claude_api.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("cost_source", sa.String(length=16), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cache_creation_tokens", sa.BigInteger(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("agent_name", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name="ck_agent_usage_status"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agent_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_usage_agent_name"), ["agent_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_usage_event_id"), ["event_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_agent_usage_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_usage_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_usage_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_usage_timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "skill_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("project_id", sa.String(length=200), nullable=True),
        sa.Column("timestamp", claude_api.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", claude_api.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("cost_source", sa.String(length=16), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cache_creation_tokens", sa.BigInteger(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("skill_name", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name="ck_skill_usage_status"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("skill_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_skill_usage_event_id"), ["event_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_skill_usage_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_skill_usage_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_skill_usage_skill_name"), ["skill_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_skill_usage_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_skill_usage_timestamp"), ["timestamp"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("skill_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_skill_usage_timestamp"))
        batch_op.drop_index(batch_op.f("ix_skill_usage_task_id"))
        batch_op.drop_index(batch_op.f("ix_skill_usage_skill_name"))
        batch_op.drop_index(batch_op.f("ix_skill_usage_project_id"))
        batch_op.drop_index(batch_op.f("ix_skill_usage_parent_id"))
        batch_op.drop_index(batch_op.f("ix_skill_usage_event_id"))

    op.drop_table("skill_usage")
    with op.batch_alter_table("agent_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_usage_timestamp"))
        batch_op.drop_index(batch_op.f("ix_agent_usage_task_id"))
        batch_op.drop_index(batch_op.f("ix_agent_usage_project_id"))
        batch_op.drop_index(batch_op.f("ix_agent_usage_parent_id"))
        batch_op.drop_index(batch_op.f("ix_agent_usage_event_id"))
        batch_op.drop_index(batch_op.f("ix_agent_usage_agent_name"))

    op.drop_table("agent_usage")
