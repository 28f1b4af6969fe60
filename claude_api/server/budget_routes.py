"""REST for budgets: list, set and remove them, their status in their current period, and the
budgets that cover an agent or skill with the decision for one about to start (what the
PreToolUse hook asks a team's server). Reading needs a read key, changing an admin key; a key
bound to a project sees and changes that project's budgets only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from claude_api.events import OptionalName
from claude_api.executor import DEFAULT_AGENT
from claude_api.guardrails.verdicts import DENY, USD, WARN, Budget, BudgetState, Decision
from claude_api.models.budgets import remove_budget, set_budget
from claude_api.models.keys import Scope
from claude_api.models.queries.budgets import budget_statuses, check_budgets, list_budgets
from claude_api.models.task_sessions import registered_names
from claude_api.server.endpoints import (
    MAX_ROW_ID,
    Endpoint,
    QueryParam,
    Refused,
    caller,
    instant,
    json_body,
    project_of,
    query,
    read,
    write,
)
from claude_api.server.responses import JSONResponse, problem
from claude_api.server.services import Services

logger = logging.getLogger(__name__)

TAG = "budgets"


class BudgetRequest(BaseModel):
    """A budget to set: its scope (`kind` and `name`, `project_id`, or neither: everything),
    its period in `tz`, and its limit in USD or in tokens (exactly one). Setting a budget of the
    same scope, period and unit again changes its limit, action and time zone."""

    model_config = ConfigDict(extra="forbid")

    period: Literal["day", "week", "month"]
    kind: Literal["agent", "skill"] | None = None
    name: OptionalName = None
    project_id: OptionalName = None
    usd: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    tokens: int | None = Field(default=None, strict=True)
    action: Literal["warn", "deny"] = "deny"
    tz: str = Field(default="UTC", max_length=64)


@dataclass(frozen=True, kw_only=True)
class BudgetBody:
    """A budget: what it limits (`kind` and `name`, `project_id`; null for any), per `period`
    of its time zone `tz`, `limit_usd` or `limit_tokens`, and its `action` once spent."""

    id: int
    kind: str | None
    name: str | None
    project_id: str | None
    period: str
    unit: str
    limit_usd: float | None
    limit_tokens: int | None
    action: str
    tz: str
    label: str

    @classmethod
    def of(cls, budget: Budget) -> BudgetBody:
        usd = budget.unit == USD
        return cls(
            id=budget.id,
            kind=budget.kind,
            name=budget.name,
            project_id=budget.project_id,
            period=budget.period,
            unit=budget.unit,
            limit_usd=float(budget.limit) if usd else None,
            limit_tokens=None if usd else int(budget.limit),
            action=budget.action,
            tz=budget.tz,
            label=budget.label,
        )


@dataclass(frozen=True, kw_only=True)
class BudgetStatus:
    """A budget in its current period [start_at, end_at): its invocations (running ones
    included) and what they cost (`cost_usd` null when none reports a cost) and used; `spent`,
    `remaining` and `forecast` (the period's end at its pace so far) in the budget's unit."""

    budget: BudgetBody
    start_at: datetime
    end_at: datetime
    invocations: int
    unpriced_invocations: int
    cost_usd: float | None
    tokens: int
    spent: float | None
    remaining: float | None
    forecast: float | None
    exhausted: bool
    message: str

    @classmethod
    def of(cls, state: BudgetState) -> BudgetStatus:
        return cls(
            budget=BudgetBody.of(state.budget),
            start_at=state.start_at,
            end_at=state.end_at,
            invocations=state.spend.invocations,
            unpriced_invocations=state.spend.unpriced_invocations,
            cost_usd=state.spend.cost_usd,
            tokens=state.spend.tokens,
            spent=state.spent,
            remaining=state.remaining,
            forecast=state.forecast,
            exhausted=state.exhausted,
            message=state.sentence(),
        )


@dataclass(frozen=True, kw_only=True)
class BudgetList:
    """Every budget the caller may see, in id order."""

    items: tuple[BudgetBody, ...]


@dataclass(frozen=True, kw_only=True)
class BudgetStatusList:
    """Every budget the caller may see, in its current period."""

    items: tuple[BudgetStatus, ...]


@dataclass(frozen=True, kw_only=True)
class BudgetCheck:
    """Whether an invocation may start now: `decision` allow, warn or deny, `reasons` (the
    spent budgets, in the words Claude reads) and every budget that covers it."""

    decision: Literal["allow", "warn", "deny"]
    reasons: tuple[str, ...]
    budgets: tuple[BudgetStatus, ...]


async def get_budgets(request: Request) -> Response:
    """Every budget, in id order (a project-bound key: its project's)."""
    principal = caller(request, Scope.READ)
    query(request, allowed=set())
    budgets = await read(request, lambda s: list_budgets(s, project_id=principal.project_id))
    return JSONResponse(BudgetList(items=tuple(BudgetBody.of(b) for b in budgets)))


async def get_budget_status(request: Request) -> Response:
    """Every budget in its current period: what its scope spent so far, running invocations
    included, what is left and the forecast of the period's end; `at` asks about another
    moment than now."""
    principal = caller(request, Scope.READ)
    at = instant(query(request, allowed={"at"}).get("at"), "at")
    states = await read(
        request, lambda s: budget_statuses(s, project_id=principal.project_id, now=at)
    )
    return JSONResponse(BudgetStatusList(items=tuple(BudgetStatus.of(s) for s in states)))


def _checking(kind: str) -> Endpoint:
    async def get_budget_check(request: Request) -> Response:
        """The budgets that cover an invocation of this agent or skill in `project_id` (its
        own, its project's and everything's), and whether one may start now: deny when a deny
        budget is spent. With `session_id`, a session the executor ran counts under the
        project it registered."""
        principal = caller(request, Scope.READ)
        params = query(request, allowed={"project_id", "session_id"})
        name = request.path_params["name"]
        project, session_id = params.get("project_id"), params.get("session_id")
        services: Services = request.app.state.services
        if session_id:
            names = await services.run(lambda: registered_names(services.engine, [session_id]))
            if session_id in names:
                project = names[session_id].project_id
        project = project_of(principal, project)
        decision, states = await read(
            request, lambda s: check_budgets(s, kind=kind, name=name, project_id=project)
        )
        return JSONResponse(
            BudgetCheck(
                decision=decision.decision,  # type: ignore[arg-type]
                reasons=decision.reasons,
                budgets=tuple(BudgetStatus.of(state) for state in states),
            )
        )

    get_budget_check.__name__ = f"{kind}_budget_check"
    return Endpoint(
        path=f"/v1/{kind}s/{{name}}/budgets",
        method="GET",
        name=f"{kind}_budget_check",
        summary=f"The budgets of one {kind}, and whether it may start now",
        tag=TAG,
        handler=get_budget_check,
        response=BudgetCheck,
        params=(
            QueryParam("name", f"The {kind}.", {"type": "string"}, "path"),
            QueryParam("project_id", "The project it would run in.", {"type": "string"}),
            QueryParam(
                "session_id",
                "The Claude Code session it would run in: one the executor ran counts under "
                "the project it registered.",
                {"type": "string"},
            ),
        ),
        errors={400: "A parameter is unknown or repeated.", 503: "The check took too long."},
    )


async def post_budget(request: Request) -> Response:
    """Set a budget (admin): 201 when new, 200 when it changed the one of the same scope,
    period and unit. A project-bound key sets budgets of its project only (its project when
    the body names none)."""
    principal = caller(request, Scope.ADMIN)
    wanted = await json_body(request, BudgetRequest, "budget")
    project = project_of(principal, wanted.project_id)
    fields = wanted.model_dump(exclude={"project_id"})
    change = await write(request, lambda s: set_budget(s, project_id=project, **fields))
    status = 201 if change.created else 200
    return JSONResponse(BudgetBody.of(change.budget), status_code=status)


async def delete_budget(request: Request) -> Response:
    """Remove a budget (admin) and answer it; 404 when there is none (of the key's project)."""
    principal = caller(request, Scope.ADMIN)
    query(request, allowed=set())
    budget_id = _id(request.path_params["id"])
    removed = await write(
        request, lambda s: remove_budget(s, budget_id, project_id=principal.project_id)
    )
    return JSONResponse(BudgetBody.of(removed))


def _id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > MAX_ROW_ID:
        raise Refused(problem(404, f"no budget {text[:40]!r}"))
    return int(text)


ID = QueryParam("id", "The budget's id, as listed.", {"type": "integer"}, "path")
ENDPOINTS = [
    Endpoint(
        path="/v1/budgets",
        method="GET",
        name="list_budgets",
        summary="Every budget",
        tag=TAG,
        handler=get_budgets,
        response=BudgetList,
        errors={400: "A parameter is unknown."},
    ),
    Endpoint(
        path="/v1/budgets",
        method="POST",
        name="set_budget",
        summary="Set a budget, or change the one of the same scope, period and unit",
        tag=TAG,
        handler=post_budget,
        response=BudgetBody,
        status=201,
        body=BudgetRequest,
        errors={
            200: "The budget of the same scope, period and unit was changed.",
            400: "The body is not JSON.",
            415: "The body is not application/json.",
            422: "The budget is invalid; `errors` names each field. Nothing was written.",
        },
    ),
    Endpoint(
        path="/v1/budgets/status",
        method="GET",
        name="budget_status",
        summary="Every budget in its current period: spent, remaining, forecast",
        tag=TAG,
        handler=get_budget_status,
        response=BudgetStatusList,
        params=(
            QueryParam(
                "at", "Another moment than now (ISO 8601 with an offset).", {"type": "string"}
            ),
        ),
        errors={400: "A parameter is unknown, repeated or invalid.", 503: "It took too long."},
    ),
    Endpoint(
        path="/v1/budgets/{id}",
        method="DELETE",
        name="remove_budget",
        summary="Remove a budget",
        tag=TAG,
        handler=delete_budget,
        response=BudgetBody,
        params=(ID,),
        errors={404: "There is no such budget (of the key's project)."},
    ),
    _checking("agent"),
    _checking("skill"),
]


async def task_budget_refusal(
    services: Services, *, agent: str | None, project_id: str | None
) -> Response | None:
    """409 naming the spent budgets when a deny budget forbids a task of `agent` (None: Claude
    Code's own) in `project_id`; None when it may run (also when the check itself failed, as
    the PreToolUse hook lets a call go on: logged)."""
    name = agent or DEFAULT_AGENT

    def check() -> tuple[Decision, list[BudgetState]]:
        with services.session(deadline=services.query_deadline()) as session:
            return check_budgets(session, kind="agent", name=name, project_id=project_id)

    try:
        decision, states = await services.run(check)
    except Exception:
        logger.exception("budgets of task agent %r not checked; the task runs", name)
        return None
    if decision.decision == WARN:
        logger.warning("task of agent %r runs over a warn budget: %s", name, decision.text)
    if decision.decision != DENY:
        return None
    spent = [BudgetStatus.of(state) for state in states if state.exhausted]
    return problem(409, f"{decision.text}; nothing was run", budgets=spent)
