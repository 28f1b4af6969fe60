"""Create budgets, alert_rules and alert_events: spending limits per agent, skill, project or
everything, enforced when Claude Code launches a subagent or skill and when the executor starts
a task; alert rules on failure rate, cost and p95 duration, with the history of their firings
and resolutions and of their webhook deliveries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import claude_api.models.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC_TIME = claude_api.models.types.UTCDateTime(timezone=True)
NAME = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("project_key", NAME, nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=True),
        sa.Column("limit_tokens", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "(unit = 'usd' AND limit_usd IS NOT NULL AND limit_tokens IS NULL) OR "
            "(unit = 'tokens' AND limit_tokens IS NOT NULL AND limit_usd IS NULL)",
            name="ck_budgets_limit",
        ),
        sa.CheckConstraint("action IN ('warn', 'deny')", name="ck_budgets_action"),
        sa.CheckConstraint("kind IN ('', 'agent', 'skill')", name="ck_budgets_kind"),
        sa.CheckConstraint("period IN ('day', 'week', 'month')", name="ck_budgets_period"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "name", "project_key", "period", "unit", name="uq_budgets"),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("project_key", NAME, nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("min_sample", sa.Integer(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("changed_at", UTC_TIME, nullable=True),
        sa.Column("evaluated_at", UTC_TIME, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.CheckConstraint("kind IN ('', 'agent', 'skill')", name="ck_alert_rules_kind"),
        sa.CheckConstraint(
            "metric IN ('failure_rate', 'cost', 'p95_duration')", name="ck_alert_rules_metric"
        ),
        sa.CheckConstraint("state IN ('ok', 'firing')", name="ck_alert_rules_state"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("sample", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("project_key", NAME, nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("change IN ('fired', 'resolved')", name="ck_alert_events_change"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_alert_events_at"), "alert_events", ["at"], unique=False)
    op.create_index("ix_alert_events_delivery", "alert_events", ["delivery", "id"], unique=False)
    op.create_index(op.f("ix_alert_events_rule_id"), "alert_events", ["rule_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_events_rule_id"), table_name="alert_events")
    op.drop_index("ix_alert_events_delivery", table_name="alert_events")
    op.drop_index(op.f("ix_alert_events_at"), table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
    op.drop_table("budgets")
