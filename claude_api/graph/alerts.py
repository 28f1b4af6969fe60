"""GraphQL for alert rules and their history: types, and the query and mutation fields that the
schema's `Query` and `Mutation` inherit (through `graph.guardrails`). Reading needs a read key,
adding and removing rules an admin key; a key bound to a project has its project's only."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import strawberry
from sqlmodel import Session
from strawberry.types import Info

from claude_api.events import Kind as KindEnum
from claude_api.graph.scalars import Long
from claude_api.graph.sessions import read, write
from claude_api.graph.types import Kind
from claude_api.guardrails.spend import Scope
from claude_api.models import alerts
from claude_api.models.alerts import add_rule, remove_rule
from claude_api.models.queries.alerts import alert_history, list_rules

AlertMetric = strawberry.enum(
    alerts.Metric,
    name="AlertMetric",
    description="What a rule watches: FAILURE_RATE (failed / finished, 0 to 1), COST (USD), "
    "P95_DURATION (seconds).",
)
AlertState = strawberry.enum(alerts.AlertState, name="AlertState")
AlertChange = strawberry.enum(alerts.Change, name="AlertChange")
AlertDelivery = strawberry.enum(alerts.Delivery, name="AlertDelivery")


def webhook_origin(url: str | None) -> str | None:
    """A webhook URL shown without its path and query, which often hold its secret."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def covered_scope(
    info: Info, kind: Kind | None, name: str | None, project_id: str | None
) -> Scope | None:
    """The invocations whose budgets or alert rules a query asks for (None: any), its project
    the caller's own for a key bound to one (FORBIDDEN when it names another)."""
    project = info.context.principal.project(project_id, field="projectId")
    if kind is None and name is None and project is None:
        return None
    return Scope(kind=kind.value if kind is not None else None, name=name, project_id=project)


@strawberry.type(
    description="An alert rule: a measure of an agent, a skill, a project or everything over a "
    "rolling window, and the threshold it must not pass."
)
class AlertRule:
    id: int
    metric: AlertMetric
    kind: Kind | None
    name: str | None
    project_id: str | None
    threshold: float
    window_seconds: int
    min_sample: int = strawberry.field(
        description="Fewer invocations in the window than this tell nothing: no firing."
    )
    webhook: str | None = strawberry.field(
        description="Its webhook's scheme and host (the rest of the URL is not shown)."
    )
    state: AlertState
    value: float | None = strawberry.field(description="The measure at the last evaluation.")
    changed_at: datetime | None
    evaluated_at: datetime | None
    label: str

    @classmethod
    def of(cls, rule: alerts.AlertRule) -> AlertRule:
        return cls(
            id=rule.id,
            metric=rule.metric,
            kind=KindEnum(rule.kind) if rule.kind else None,  # type: ignore[arg-type]
            name=rule.name,
            project_id=rule.project_id,
            threshold=rule.threshold,
            window_seconds=rule.window_seconds,
            min_sample=rule.min_sample,
            webhook=webhook_origin(rule.webhook_url),
            state=rule.state,
            value=rule.value,
            changed_at=rule.changed_at,
            evaluated_at=rule.evaluated_at,
            label=rule.label,
        )


@strawberry.type(description="A firing or a resolution of a rule, and its webhook delivery.")
class AlertEvent:
    id: int
    rule_id: int
    rule: str = strawberry.field(description="The rule as it read then.")
    change: AlertChange
    at: datetime
    value: float | None
    threshold: float
    sample: Long | None
    message: str
    project_id: str | None
    delivery: AlertDelivery
    attempts: int
    delivered_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, event: alerts.AlertEvent) -> AlertEvent:
        fields = {name: getattr(event, name) for name in cls.__annotations__}
        return cls(**fields)


@strawberry.input(description="An alert rule to add.")
class AlertRuleInput:
    metric: AlertMetric
    threshold: float = strawberry.field(
        description="Fires above this: a rate from 0 to 1, USD, or seconds."
    )
    window_seconds: int = strawberry.field(description="The rolling window, 60 s to 31 days.")
    kind: Kind | None = None
    name: str | None = None
    project_id: str | None = None
    min_sample: int = 1
    webhook_url: str | None = strawberry.field(
        default=None, description="Where each firing and resolution is POSTed (JSON, `text`)."
    )


@strawberry.type
class AlertQueries:
    """Alert fields of `Query`."""

    @strawberry.field(
        description="Every alert rule, in id order (a project-bound key: its own). With state: "
        "those in it (FIRING: the open alerts). With kind, name or projectId: only the rules "
        "watching some of those invocations, as budgets cover them (see budgetStatus)."
    )
    async def alert_rules(
        self,
        info: Info,
        state: AlertState | None = None,
        kind: Kind | None = None,
        name: str | None = None,
        project_id: str | None = None,
    ) -> list[AlertRule]:
        covering = covered_scope(info, kind, name, project_id)

        def work(session: Session, project: str | None) -> list[alerts.AlertRule]:
            return list_rules(session, project_id=project, state=state, covering=covering)

        return [AlertRule.of(rule) for rule in await read(info, work)]

    @strawberry.field(description="Firings and resolutions, the most recent first.")
    async def alert_history(
        self, info: Info, rule_id: int | None = None, first: int = 100
    ) -> list[AlertEvent]:
        def work(session: Session, project: str | None) -> list[alerts.AlertEvent]:
            return alert_history(session, project_id=project, rule_id=rule_id, limit=first)

        return [AlertEvent.of(event) for event in await read(info, work)]


@strawberry.type
class AlertMutations:
    """Alert fields of `Mutation`."""

    @strawberry.mutation(description="Add an alert rule (admin).")
    async def add_alert_rule(self, info: Info, rule: AlertRuleInput) -> AlertRule:
        def work(session: Session, principal: Any) -> alerts.AlertRule:
            return add_rule(
                session,
                metric=rule.metric,
                threshold=rule.threshold,
                window_seconds=rule.window_seconds,
                kind=rule.kind.value if rule.kind is not None else None,
                name=rule.name,
                project_id=principal.project(rule.project_id, field="projectId"),
                min_sample=rule.min_sample,
                webhook_url=rule.webhook_url,
            )

        return AlertRule.of(await write(info, work))

    @strawberry.mutation(description="Remove an alert rule (admin); its history stays.")
    async def remove_alert_rule(self, info: Info, id: int) -> AlertRule:
        def work(session: Session, principal: Any) -> alerts.AlertRule:
            return remove_rule(session, id, project_id=principal.project_id)

        return AlertRule.of(await write(info, work))
