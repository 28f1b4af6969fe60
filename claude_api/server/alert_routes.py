"""REST for alert rules: list, add and remove them, and their history of firings and
resolutions. Reading needs a read key, adding and removing an admin key; a key bound to a
project has its project's rules and history only. Webhook URLs are shown by their origin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from claude_api.events import OptionalName
from claude_api.graph.alerts import webhook_origin
from claude_api.models import alerts
from claude_api.models.alerts import add_rule, remove_rule
from claude_api.models.keys import Scope
from claude_api.models.queries.alerts import alert_history, list_rules
from claude_api.server.endpoints import (
    MAX_ROW_ID,
    Endpoint,
    QueryParam,
    Refused,
    caller,
    json_body,
    project_of,
    query,
    read,
    write,
)
from claude_api.server.responses import JSONResponse, problem

TAG = "alerts"


class AlertRuleRequest(BaseModel):
    """An alert rule to add: the `metric` of an agent or skill (`kind` and `name`), a project,
    or everything, over a rolling window of `window_seconds`; it fires when the metric passes
    `threshold` with at least `min_sample` invocations, and each firing and resolution is
    POSTed to `webhook_url` (JSON with a Slack-compatible `text`)."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["failure_rate", "cost", "p95_duration"]
    threshold: float = Field(strict=True, allow_inf_nan=False)
    window_seconds: int = Field(strict=True)
    kind: Literal["agent", "skill"] | None = None
    name: OptionalName = None
    project_id: OptionalName = None
    min_sample: int = Field(default=1, strict=True)
    webhook_url: str | None = Field(default=None, max_length=alerts.MAX_URL_LENGTH)


@dataclass(frozen=True, kw_only=True)
class AlertRuleBody:
    """An alert rule: what it watches, its threshold and window, its webhook's origin, and
    where it stands (`state` ok or firing, `value` at its last evaluation)."""

    id: int
    metric: str
    kind: str | None
    name: str | None
    project_id: str | None
    threshold: float
    window_seconds: int
    min_sample: int
    webhook: str | None
    state: str
    value: float | None
    changed_at: datetime | None
    evaluated_at: datetime | None
    label: str

    @classmethod
    def of(cls, rule: alerts.AlertRule) -> AlertRuleBody:
        return cls(
            id=rule.id,
            metric=rule.metric.value,
            kind=rule.kind,
            name=rule.name,
            project_id=rule.project_id,
            threshold=rule.threshold,
            window_seconds=rule.window_seconds,
            min_sample=rule.min_sample,
            webhook=webhook_origin(rule.webhook_url),
            state=rule.state.value,
            value=rule.value,
            changed_at=rule.changed_at,
            evaluated_at=rule.evaluated_at,
            label=rule.label,
        )


@dataclass(frozen=True, kw_only=True)
class AlertEventBody:
    """A firing or resolution: the rule as it read then, the measure and its sample, the
    message sent, and how its webhook delivery went."""

    id: int
    rule_id: int
    rule: str
    change: str
    at: datetime
    value: float | None
    threshold: float
    sample: int | None
    message: str
    project_id: str | None
    delivery: str
    attempts: int
    delivered_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, event: alerts.AlertEvent) -> AlertEventBody:
        return cls(
            id=event.id,
            rule_id=event.rule_id,
            rule=event.rule,
            change=event.change.value,
            at=event.at,
            value=event.value,
            threshold=event.threshold,
            sample=event.sample,
            message=event.message,
            project_id=event.project_id,
            delivery=event.delivery.value,
            attempts=event.attempts,
            delivered_at=event.delivered_at,
            last_error=event.last_error,
        )


@dataclass(frozen=True, kw_only=True)
class AlertRuleList:
    """Every alert rule the caller may see, in id order."""

    items: tuple[AlertRuleBody, ...]


@dataclass(frozen=True, kw_only=True)
class AlertHistory:
    """Firings and resolutions, the most recent first."""

    items: tuple[AlertEventBody, ...]


async def get_rules(request: Request) -> Response:
    """Every alert rule, in id order (a project-bound key: its project's)."""
    principal = caller(request, Scope.READ)
    query(request, allowed=set())
    rules = await read(request, lambda s: list_rules(s, project_id=principal.project_id))
    return JSONResponse(AlertRuleList(items=tuple(AlertRuleBody.of(rule) for rule in rules)))


async def get_history(request: Request) -> Response:
    """Firings and resolutions, the most recent first: of one rule with `rule_id`, at most
    `limit` (100; up to 1,000)."""
    principal = caller(request, Scope.READ)
    params = query(request, allowed={"rule_id", "limit"})
    rule_id = _whole(params.get("rule_id"), "rule_id")
    limit = _whole(params.get("limit"), "limit") or 100
    events = await read(
        request,
        lambda s: alert_history(s, project_id=principal.project_id, rule_id=rule_id, limit=limit),
    )
    return JSONResponse(AlertHistory(items=tuple(AlertEventBody.of(event) for event in events)))


async def post_rule(request: Request) -> Response:
    """Add an alert rule (admin). A project-bound key adds rules of its project only (its
    project when the body names none)."""
    principal = caller(request, Scope.ADMIN)
    wanted = await json_body(request, AlertRuleRequest, "alert rule")
    project = project_of(principal, wanted.project_id)
    fields = wanted.model_dump(exclude={"project_id"})
    rule = await write(request, lambda s: add_rule(s, project_id=project, **fields))
    return JSONResponse(AlertRuleBody.of(rule))


async def delete_rule(request: Request) -> Response:
    """Remove an alert rule (admin) and answer it; its history stays. 404 when there is none
    (of the key's project)."""
    principal = caller(request, Scope.ADMIN)
    query(request, allowed=set())
    text = request.path_params["id"]
    rule_id = _whole(text, "id")
    if rule_id is None:
        raise Refused(problem(404, f"no alert rule {text[:40]!r}"))
    removed = await write(
        request, lambda s: remove_rule(s, rule_id, project_id=principal.project_id)
    )
    return JSONResponse(AlertRuleBody.of(removed))


def _whole(text: str | None, field: str) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > MAX_ROW_ID:
        if field == "id":
            return None
        message = f"must be a whole number, got {text[:40]!r}"
        raise Refused(problem(400, f"{field} {message}", [{"field": field, "message": message}]))
    return int(text)


ENDPOINTS = [
    Endpoint(
        path="/v1/alerts",
        method="GET",
        name="list_alert_rules",
        summary="Every alert rule",
        tag=TAG,
        handler=get_rules,
        response=AlertRuleList,
        errors={400: "A parameter is unknown."},
    ),
    Endpoint(
        path="/v1/alerts",
        method="POST",
        name="add_alert_rule",
        summary="Add an alert rule",
        tag=TAG,
        handler=post_rule,
        response=AlertRuleBody,
        body=AlertRuleRequest,
        errors={
            400: "The body is not JSON.",
            415: "The body is not application/json.",
            422: "The rule is invalid; `errors` names each field. Nothing was written.",
        },
    ),
    Endpoint(
        path="/v1/alerts/history",
        method="GET",
        name="alert_history",
        summary="Firings and resolutions, the most recent first",
        tag=TAG,
        handler=get_history,
        response=AlertHistory,
        params=(
            QueryParam("rule_id", "Only this rule's.", {"type": "integer"}),
            QueryParam("limit", "At most this many (100; up to 1,000).", {"type": "integer"}),
        ),
        errors={400: "A parameter is unknown, repeated or invalid.", 503: "It took too long."},
    ),
    Endpoint(
        path="/v1/alerts/{id}",
        method="DELETE",
        name="remove_alert_rule",
        summary="Remove an alert rule",
        tag=TAG,
        handler=delete_rule,
        response=AlertRuleBody,
        params=(QueryParam("id", "The rule's id, as listed.", {"type": "integer"}, "path"),),
        errors={404: "There is no such rule (of the key's project)."},
    ),
]
