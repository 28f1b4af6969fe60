"""REST for budgets (and alerts) under /v1: list, set and remove budgets, their status in their
current period, and the check the PreToolUse hook asks a team's server before a subagent or
skill starts. Reading needs a read key, changing an admin key; a key bound to a project sees
and changes that project's only. Bodies are JSON (`Content-Type: application/json`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from claude_api.access import Principal
from claude_api.errors import Forbidden, InvalidFilter, NotFound, QueryTimeout
from claude_api.guardrails.verdicts import USD, Budget, BudgetState
from claude_api.models.budgets import remove_budget, set_budget
from claude_api.models.db import write_engine
from claude_api.models.events import MAX_NAME_LENGTH, validation_problems
from claude_api.models.keys import Scope
from claude_api.models.queries.budgets import budget_statuses, check_budgets, list_budgets
from claude_api.models.task_sessions import registered_names
from claude_api.server.auth import principal_of
from claude_api.server.responses import JSONResponse, forbidden, problem
from claude_api.server.services import Services

T = TypeVar("T")
JSON = "application/json"


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[
    str | None,
    Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_no_nul),
]


class BudgetRequest(BaseModel):
    """A budget to set: its scope (kind and name, project, or neither: everything), its period
    and its limit in USD or in tokens (exactly one); setting it again changes it."""

    model_config = ConfigDict(extra="forbid")

    period: Literal["day", "week", "month"]
    kind: Literal["agent", "skill"] | None = None
    name: Name = None
    project_id: Name = None
    usd: float | None = Field(default=None, strict=True)
    tokens: int | None = Field(default=None, strict=True)
    action: Literal["warn", "deny"] = "deny"
    tz: str = Field(default="UTC", max_length=64)


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def budget_json(budget: Budget) -> dict[str, Any]:
    """A budget as the REST surface shows it."""
    usd = budget.unit == USD
    return {
        "id": budget.id,
        "kind": budget.kind,
        "name": budget.name,
        "project_id": budget.project_id,
        "period": budget.period,
        "unit": budget.unit,
        "limit_usd": budget.limit if usd else None,
        "limit_tokens": None if usd else budget.limit,
        "action": budget.action,
        "tz": budget.tz,
        "label": budget.label,
    }


def status_json(state: BudgetState) -> dict[str, Any]:
    """A budget in its current period as the REST surface shows it."""
    return {
        "budget": budget_json(state.budget),
        "start_at": state.start_at,
        "end_at": state.end_at,
        "invocations": state.spend.invocations,
        "unpriced_invocations": state.spend.unpriced_invocations,
        "cost_usd": state.spend.cost_usd,
        "tokens": state.spend.tokens,
        "spent": state.spent,
        "remaining": state.remaining,
        "forecast": state.forecast,
        "exhausted": state.exhausted,
        "message": state.sentence(),
    }


async def get_budgets(request: Request) -> Response:
    """Every budget, in id order (a project-bound key: its project's)."""
    principal = _caller(request, Scope.READ)
    _params(request, allowed=set())
    budgets = await _read(request, lambda s: list_budgets(s, project_id=principal.project_id))
    return JSONResponse({"items": [budget_json(budget) for budget in budgets]})


async def get_budget_status(request: Request) -> Response:
    """Every budget in its current period: spent, remaining, forecast. `at` (ISO 8601 with an
    offset) asks about another moment than now."""
    principal = _caller(request, Scope.READ)
    params = _params(request, allowed={"at"})
    at = _instant(params.get("at"), "at")
    states = await _read(
        request, lambda s: budget_statuses(s, project_id=principal.project_id, now=at)
    )
    return JSONResponse({"items": [status_json(state) for state in states]})


async def get_budget_check(request: Request) -> Response:
    """Whether an invocation of `kind` (agent or skill) `name` in `project_id` may start now:
    `decision` (allow, warn or deny), `reasons` and the budgets that cover it. With
    `session_id`, a session the executor ran counts under the project it registered."""
    principal = _caller(request, Scope.READ)
    params = _params(request, allowed={"kind", "name", "project_id", "session_id"})
    kind, name = params.get("kind"), params.get("name")
    if kind not in ("agent", "skill"):
        raise _Refused(problem(400, "kind must be agent or skill", [{"field": "kind"}]))
    if not name:
        raise _Refused(problem(400, "name is required", [{"field": "name"}]))
    services: Services = request.app.state.services
    project = params.get("project_id")
    session_id = params.get("session_id")
    if session_id:
        names = await services.run(lambda: registered_names(services.engine, [session_id]))
        if session_id in names:
            project = names[session_id].project_id
    try:
        project = principal.project(project)
    except Forbidden as error:
        raise _Refused(forbidden(error)) from None
    decision, states = await _read(
        request, lambda s: check_budgets(s, kind=kind, name=name, project_id=project)
    )
    return JSONResponse(
        {
            "decision": decision.decision,
            "reasons": list(decision.reasons),
            "budgets": [status_json(state) for state in states],
        }
    )


async def post_budget(request: Request) -> Response:
    """Set a budget (admin): 201 when new, 200 when it changed one of the same scope, period
    and unit. A project-bound key sets budgets of its project only."""
    principal = _caller(request, Scope.ADMIN)
    body = await _json_body(request)
    try:
        wanted = BudgetRequest.model_validate(body)
        project = principal.project(wanted.project_id)
    except ValidationError as error:
        return problem(422, "the budget is invalid", validation_problems(error))
    except Forbidden as error:
        return forbidden(error)
    fields = wanted.model_dump(exclude={"project_id"})
    change = await _write(request, lambda s: set_budget(s, project_id=project, **fields))
    return JSONResponse(budget_json(change.budget), status_code=201 if change.created else 200)


async def delete_budget(request: Request) -> Response:
    """Remove a budget (admin) and answer it; 404 when there is none (of the key's project)."""
    principal = _caller(request, Scope.ADMIN)
    budget_id = request.path_params["budget_id"]
    removed = await _write(
        request, lambda s: remove_budget(s, budget_id, project_id=principal.project_id)
    )
    return JSONResponse(budget_json(removed))


def _caller(request: Request, needed: Scope) -> Principal:
    principal = principal_of(request)
    try:
        principal.require(needed)
    except Forbidden as error:
        raise _Refused(forbidden(error)) from None
    return principal


def _params(request: Request, *, allowed: set[str]) -> dict[str, str]:
    """The query parameters, each once; an unknown or repeated one is refused (400)."""
    items = request.query_params.multi_items()
    problems = [
        {"field": key, "message": "unknown parameter" if key not in allowed else "given twice"}
        for index, (key, _) in enumerate(items)
        if key not in allowed or any(other == key for other, _ in items[:index])
    ]
    if problems:
        known = ", ".join(sorted(allowed)) or "none"
        raise _Refused(
            problem(400, f"unknown or repeated query parameters (known: {known})", problems)
        )
    return dict(items)


def _instant(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        message = f"{field} must be an ISO 8601 time with an offset, got {value!r}"
        raise _Refused(problem(400, message, [{"field": field, "message": message}]))
    return moment


async def _json_body(request: Request) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise _Refused(problem(415, f"send the body as {JSON}"))
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise _Refused(problem(400, f"the request body is not valid JSON: {error}")) from None


async def _read(request: Request, work: Callable[[Session], T]) -> T:
    services: Services = request.app.state.services
    deadline = services.query_deadline()

    def run() -> T:
        with services.session(deadline=deadline) as session:
            return work(session)

    try:
        return await services.run(run)
    except QueryTimeout as error:
        raise _Refused(problem(503, str(error))) from None


async def _write(request: Request, work: Callable[[Session], T]) -> T:
    services: Services = request.app.state.services

    def run() -> T:
        with Session(write_engine(services.engine)) as session:
            result = work(session)
            session.commit()
            return result

    try:
        return await services.run(run)
    except InvalidFilter as error:
        problems = [{"field": error.field, "message": error.message}]
        raise _Refused(problem(422, str(error), problems)) from None
    except NotFound as error:
        raise _Refused(problem(404, str(error))) from None


def _refusals(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def handle(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _Refused as refused:
            return refused.response

    handle.__name__ = handle.__qualname__ = endpoint.__name__
    handle.__doc__ = endpoint.__doc__
    return handle


def guardrail_routes() -> list[BaseRoute]:
    """The routes of budgets (and alerts) under /v1."""
    return [
        Route("/v1/budgets", _refusals(get_budgets), methods=["GET"]),
        Route("/v1/budgets", _refusals(post_budget), methods=["POST"]),
        Route("/v1/budgets/status", _refusals(get_budget_status), methods=["GET"]),
        Route("/v1/budgets/check", _refusals(get_budget_check), methods=["GET"]),
        Route("/v1/budgets/{budget_id:int}", _refusals(delete_budget), methods=["DELETE"]),
    ]
