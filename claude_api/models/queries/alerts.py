"""Alert rules and their history, and the measure a rule watches over its window: the failure
rate and p95 duration of the usage statistics, or the spend the budgets read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import NotFound
from claude_api.guardrails.spend import Scope, read_spend
from claude_api.models.alerts import (
    AlertEvent,
    AlertEventRow,
    AlertRule,
    AlertRuleRow,
    AlertState,
    Delivery,
    Metric,
    event_of,
    rule_of,
)
from claude_api.models.filters import MAX_PAGE_SIZE, UsageFilter, check_limit
from claude_api.models.queries.budgets import SessionReader, covers
from claude_api.models.queries.stats import usage_stats

_RULES = AlertRuleRow.__table__
_EVENTS = AlertEventRow.__table__


@dataclass(frozen=True, kw_only=True)
class Measure:
    """A rule's measure at one moment: `value` (None when there are fewer than its minimum
    sample of invocations to tell) and `sample`, the invocations it comes from."""

    value: float | None
    sample: int

    def breaches(self, rule: AlertRule) -> bool:
        return self.value is not None and self.value > rule.threshold


def list_rules(
    session: Session,
    *,
    project_id: str | None = None,
    state: AlertState | None = None,
    covering: Scope | None = None,
) -> list[AlertRule]:
    """Every rule in id order; with `project_id`, only those of that project; with `state`,
    those in it (FIRING: the open alerts); with `covering`, those watching some of its
    invocations (as budgets cover them: `covers`)."""
    query = sa.select(_RULES).order_by(_RULES.c.id)
    if project_id is not None:
        query = query.where(_RULES.c.project_key == project_id)
    if state is not None:
        query = query.where(_RULES.c.state == AlertState(state).value)
    if covering is not None:
        query = query.where(covers(_RULES, covering))
    return [rule_of(row) for row in session.execute(query)]


def alert_history(
    session: Session,
    *,
    project_id: str | None = None,
    rule_id: int | None = None,
    limit: int = 100,
) -> list[AlertEvent]:
    """Firings and resolutions, the most recent first; of one rule, or of one project's."""
    check_limit(limit, maximum=MAX_PAGE_SIZE)
    query = sa.select(_EVENTS).order_by(_EVENTS.c.id.desc()).limit(limit)
    if project_id is not None:
        query = query.where(_EVENTS.c.project_key == project_id)
    if rule_id is not None:
        query = query.where(_EVENTS.c.rule_id == rule_id)
    return [event_of(row) for row in session.execute(query)]


def has_pending_deliveries(session: Session) -> bool:
    """Whether an event waits for its webhook delivery."""
    pending = sa.select(_EVENTS.c.id).where(_EVENTS.c.delivery == Delivery.PENDING.value)
    return session.execute(pending.limit(1)).first() is not None


def measure_rule(session: Session, rule: AlertRule, *, now: datetime) -> Measure:
    """What `rule` watches over the window ending at `now`.

    Failure rate: failed / finished invocations; p95 duration: of the finished ones (both
    unknown below the rule's minimum sample); cost: what the invocations started in the window
    spent, running ones included (unpriced ones count nothing).
    """
    since = now - timedelta(seconds=rule.window_seconds)
    if rule.metric is Metric.COST:
        scope = Scope(kind=rule.kind, name=rule.name, project_id=rule.project_id)
        spend = read_spend(SessionReader(session), scope, since, now)
        enough = spend.invocations >= rule.min_sample
        return Measure(value=(spend.cost_usd or 0.0) if enough else None, sample=spend.invocations)
    scope_filter = UsageFilter(
        kind=rule.kind, name=rule.name, project_id=rule.project_id, since=since, until=now
    )
    try:
        stats = usage_stats(session, filter=scope_filter, top_errors=0)
    except NotFound:  # never recorded: nothing to tell
        return Measure(value=None, sample=0)
    finished = stats.completed + stats.failed
    if finished < rule.min_sample or finished == 0:
        return Measure(value=None, sample=finished)
    if rule.metric is Metric.FAILURE_RATE:
        return Measure(value=stats.failed / finished, sample=finished)
    return Measure(value=stats.p95_duration_seconds, sample=finished)
