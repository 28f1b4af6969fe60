"""Alert rules and their history: the tables, adding and removing rules, and recording each
firing and resolution once, whichever server process sees it first.

A rule watches one measure of an agent or skill (or of everything), optionally in one project,
over a rolling window: the failure rate (with a minimum sample), the cost, or the p95 duration.
The server evaluates the rules (`claude_api.server.alerting`) and delivers each firing and
resolution to the rule's webhook (`claude_api.models.alert_deliveries`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from claude_api.errors import InvalidFilter, NotFound
from claude_api.events import MAX_COST_USD, MAX_NAME_LENGTH, Kind
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


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    """A rule as the surfaces show it; `webhook_url` is None when it has none."""

    id: int
    metric: Metric
    kind: str | None
    name: str | None
    project_id: str | None
    threshold: float
    window_seconds: int
    min_sample: int
    webhook_url: str | None
    state: AlertState
    value: float | None
    changed_at: datetime | None
    evaluated_at: datetime | None
    created_at: datetime

    @property
    def subject(self) -> str:
        """What it watches: 'agent code-reviewer in web', 'project web', 'everything'."""
        if self.name is not None:
            subject = f"{self.kind} {self.name}"
            return subject if self.project_id is None else f"{subject} in {self.project_id}"
        return "everything" if self.project_id is None else f"project {self.project_id}"

    @property
    def label(self) -> str:
        """'failure rate of agent code-reviewer over 1h above 20%'."""
        window = window_text(self.window_seconds)
        return (
            f"{METRIC_WORDS[self.metric]} of {self.subject} over {window} "
            f"above {self.shown(self.threshold)}"
        )

    def shown(self, value: float | None) -> str:
        """A value of its metric in words: 20.0%, $50.00, 95.0s."""
        if value is None:
            return "unknown"
        if self.metric is Metric.FAILURE_RATE:
            return f"{value * 100:.1f}%"
        if self.metric is Metric.COST:
            return f"${value:,.2f}"
        return f"{value:,.1f}s"


@dataclass(frozen=True, kw_only=True)
class AlertEvent:
    """A firing or resolution of a rule, with its webhook delivery."""

    id: int
    rule_id: int
    rule: str
    change: Change
    at: datetime
    value: float | None
    threshold: float
    sample: int | None
    message: str
    project_id: str | None
    webhook_url: str | None
    delivery: Delivery
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


METRIC_WORDS = {
    Metric.FAILURE_RATE: "failure rate",
    Metric.COST: "cost",
    Metric.P95_DURATION: "p95 duration",
}
_RULES = AlertRuleRow.__table__
_EVENTS = AlertEventRow.__table__


def window_text(seconds: int) -> str:
    """A window in its largest whole unit: 30m, 1h, 36h, 7d."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def add_rule(
    session: Session,
    *,
    metric: Metric | str,
    threshold: float,
    window_seconds: int,
    kind: str | None = None,
    name: str | None = None,
    project_id: str | None = None,
    min_sample: int = 1,
    webhook_url: str | None = None,
    now: datetime | None = None,
) -> AlertRule:
    """Add a rule (the caller commits). Raises InvalidFilter, naming the field, for bad input."""
    metric = _metric(metric)
    if (kind is None) != (name is None):
        raise InvalidFilter("name", "an agent or skill rule needs both its kind and its name")
    if kind is not None and kind not in (Kind.AGENT.value, Kind.SKILL.value):
        raise InvalidFilter("kind", f"must be agent or skill, got {kind!r}")
    for field, value in (("name", name), ("project_id", project_id)):
        if value is not None and (not 1 <= len(value) <= MAX_NAME_LENGTH or "\x00" in value):
            raise InvalidFilter(field, f"must be a text of 1 to {MAX_NAME_LENGTH} characters")
    limit = 1.0 if metric is Metric.FAILURE_RATE else MAX_COST_USD
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise InvalidFilter("threshold", "must be a number")
    if not math.isfinite(threshold) or not 0 <= threshold < limit:
        raise InvalidFilter("threshold", f"must be at least 0 and below {limit:g}")
    if not _whole(window_seconds) or not 60 <= window_seconds <= MAX_WINDOW_SECONDS:
        raise InvalidFilter("window_seconds", "must be from 1 minute to 31 days")
    if not _whole(min_sample) or not 1 <= min_sample <= 10**9:
        raise InvalidFilter("min_sample", "must be a whole number from 1")
    if webhook_url is not None:
        _check_url(webhook_url)
    moment = now or datetime.now(UTC)
    rule_id = session.execute(
        sa.insert(_RULES)
        .values(
            metric=metric.value,
            kind=kind or "",
            name=name or "",
            project_key=project_id or "",
            threshold=float(threshold),
            window_seconds=window_seconds,
            min_sample=min_sample,
            webhook_url=webhook_url,
            state=AlertState.OK.value,
            created_at=moment,
        )
        .returning(_RULES.c.id)
    ).scalar_one()
    return find_rule(session, rule_id)


def remove_rule(session: Session, rule_id: int, *, project_id: str | None = None) -> AlertRule:
    """Remove a rule (its history stays); with `project_id`, only one of that project.
    NotFound when there is none."""
    rule = find_rule(session, rule_id, project_id=project_id)
    session.execute(sa.delete(_RULES).where(_RULES.c.id == rule.id))
    return rule


def find_rule(session: Session, rule_id: int, *, project_id: str | None = None) -> AlertRule:
    """The rule `rule_id` (of `project_id` when given); NotFound otherwise."""
    query = sa.select(_RULES).where(_RULES.c.id == rule_id)
    if project_id is not None:
        query = query.where(_RULES.c.project_key == project_id)
    row = session.execute(query).first()
    if row is None:
        raise NotFound(f"no alert rule {rule_id}")
    return rule_of(row)


def rule_of(row: Any) -> AlertRule:
    """An `alert_rules` row as a rule."""
    return AlertRule(
        id=row.id,
        metric=Metric(row.metric),
        kind=row.kind or None,
        name=row.name or None,
        project_id=row.project_key or None,
        threshold=row.threshold,
        window_seconds=row.window_seconds,
        min_sample=row.min_sample,
        webhook_url=row.webhook_url,
        state=AlertState(row.state),
        value=row.value,
        changed_at=row.changed_at,
        evaluated_at=row.evaluated_at,
        created_at=row.created_at,
    )


def event_of(row: Any) -> AlertEvent:
    """An `alert_events` row as an event."""
    return AlertEvent(
        id=row.id,
        rule_id=row.rule_id,
        rule=row.rule,
        change=Change(row.change),
        at=row.at,
        value=row.value,
        threshold=row.threshold,
        sample=row.sample,
        message=row.message,
        project_id=row.project_key or None,
        webhook_url=row.webhook_url,
        delivery=Delivery(row.delivery),
        attempts=row.attempts,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
    )


def record_change(
    session: Session,
    rule: AlertRule,
    change: Change,
    *,
    value: float | None,
    sample: int | None,
    message: str,
    now: datetime,
) -> AlertEvent | None:
    """Move `rule` from its state to the one `change` leads to and record the event, in the
    session's transaction (the caller commits); None when the rule is no longer in the state
    `rule` shows (another server process recorded the change first, or it was removed): each
    firing and each resolution is recorded once."""
    before, after = (
        (AlertState.OK, AlertState.FIRING)
        if change is Change.FIRED
        else (AlertState.FIRING, AlertState.OK)
    )
    moved = session.execute(
        sa.update(_RULES)
        .where(_RULES.c.id == rule.id, _RULES.c.state == before.value)
        .values(state=after.value, value=value, changed_at=now, evaluated_at=now)
    )
    if moved.rowcount != 1:
        return None
    event_id = session.execute(
        sa.insert(_EVENTS)
        .values(
            rule_id=rule.id,
            rule=rule.label,
            change=change.value,
            at=now,
            value=value,
            threshold=rule.threshold,
            sample=sample,
            message=message[:MAX_MESSAGE_LENGTH],
            project_key=rule.project_id or "",
            webhook_url=rule.webhook_url,
            delivery=(Delivery.PENDING if rule.webhook_url else Delivery.NONE).value,
            attempts=0,
        )
        .returning(_EVENTS.c.id)
    ).scalar_one()
    return event_of(session.execute(sa.select(_EVENTS).where(_EVENTS.c.id == event_id)).one())


def note_evaluation(session: Session, rule_id: int, *, value: float | None, now: datetime) -> None:
    """Remember a rule's last measure and when it was taken (its state unchanged)."""
    session.execute(
        sa.update(_RULES).where(_RULES.c.id == rule_id).values(value=value, evaluated_at=now)
    )


def _metric(metric: Metric | str) -> Metric:
    try:
        return Metric(metric)
    except ValueError:
        choices = ", ".join(m.value for m in Metric)
        raise InvalidFilter("metric", f"must be one of {choices}, got {metric!r}") from None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_url(url: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(url) > MAX_URL_LENGTH
        or any(ord(character) < 0x21 for character in url)
    ):
        raise InvalidFilter("webhook_url", "must be an http:// or https:// URL")
