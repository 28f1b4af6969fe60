"""Alert rules and their history: the tables, adding and removing rules, and recording each
firing and resolution once, whichever server process sees it first.

A rule watches one measure of an agent or skill (or of everything), optionally in one project,
over a rolling window: the failure rate (with a minimum sample), the cost, or the p95 duration.
The server evaluates the rules (`claude_api.server.alerting`) and delivers each firing and
resolution to the rule's webhook.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from claude_api.models.tables import NAME
from claude_api.models.types import UTCDateTime

MAX_WINDOW_SECONDS = 31 * 24 * 3600
MAX_URL_LENGTH = 2000
MAX_MESSAGE_LENGTH = 2000


class Metric(StrEnum):
    """What a rule watches over its window."""

    FAILURE_RATE = "failure_rate"  # failed / finished invocations, from 0 to 1
    COST = "cost"  # USD spent by invocations started in the window
    P95_DURATION = "p95_duration"  # seconds, of finished invocations


class AlertState(StrEnum):
    OK = "ok"
    FIRING = "firing"


class Change(StrEnum):
    """What an alert event records."""

    FIRED = "fired"
    RESOLVED = "resolved"


class Delivery(StrEnum):
    """Where an event's webhook delivery stands."""

    NONE = "none"  # the rule has no webhook
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed


class AlertRuleRow(SQLModel, table=True):
    """A rule. `kind`, `name` and `project_key` hold '' for "any"; `state` is where the rule
    stands since its last evaluation."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        sa.CheckConstraint(
            "metric IN ('failure_rate', 'cost', 'p95_duration')", name="ck_alert_rules_metric"
        ),
        sa.CheckConstraint("kind IN ('', 'agent', 'skill')", name="ck_alert_rules_kind"),
        sa.CheckConstraint("state IN ('ok', 'firing')", name="ck_alert_rules_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    metric: str = Field(sa_type=sa.String(16))
    kind: str = Field(sa_type=sa.String(16))
    name: str = Field(sa_type=NAME)
    project_key: str = Field(sa_type=NAME)
    threshold: float = Field(sa_type=sa.Float)
    window_seconds: int = Field(sa_type=sa.Integer)
    min_sample: int = Field(sa_type=sa.Integer)
    webhook_url: str | None = Field(default=None, sa_type=sa.Text)
    state: str = Field(sa_type=sa.String(8))
    value: float | None = Field(default=None, sa_type=sa.Float)
    changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    evaluated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class AlertEventRow(SQLModel, table=True):
    """A firing or a resolution of a rule, and the delivery of its webhook. The rule's
    description is kept with it, so the history outlives the rule."""

    __tablename__ = "alert_events"
    __table_args__ = (
        sa.CheckConstraint("change IN ('fired', 'resolved')", name="ck_alert_events_change"),
        sa.Index("ix_alert_events_delivery", "delivery", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = Field(sa_type=sa.Integer, index=True)
    rule: str = Field(sa_type=sa.Text)
    change: str = Field(sa_type=sa.String(8))
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    value: float | None = Field(default=None, sa_type=sa.Float)
    threshold: float = Field(sa_type=sa.Float)
    sample: int | None = Field(default=None, sa_type=sa.BigInteger)
    message: str = Field(sa_type=sa.Text)
    project_key: str = Field(sa_type=NAME)
    webhook_url: str | None = Field(default=None, sa_type=sa.Text)
    delivery: str = Field(sa_type=sa.String(16))
    attempts: int = Field(default=0, sa_type=sa.Integer)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
