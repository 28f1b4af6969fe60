"""`POST /v1/task`: run a task with Claude Code through the agentic executor and return it."""

from __future__ import annotations

from typing import Annotated

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from claude_api.access import Principal
from claude_api.errors import Forbidden
from claude_api.events import MAX_COST_USD, MAX_NAME_LENGTH, validation_problems
from claude_api.executor import run_task
from claude_api.executor.task_session import (
    InvalidTask,
    TaskIdTaken,
    check_text,
    session_id_for,
)
from claude_api.models.keys import Scope
from claude_api.server.auth import principal_of
from claude_api.server.budget_routes import task_budget_refusal
from claude_api.server.responses import JSONResponse, forbidden, problem

MAX_TASK_SECONDS = 24 * 3600


def _no_nul(value: str | None) -> str | None:
    try:
        check_text("", value, limit=None)
    except InvalidTask as error:
        raise ValueError(error.message) from None
    return value


def _task_id(value: str | None) -> str | None:
    try:
        return session_id_for(value) if value is not None else None
    except InvalidTask as error:
        raise ValueError(error.message) from None


Text = Annotated[str, AfterValidator(_no_nul)]
Name = Annotated[
    str | None,
    Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_no_nul),
]
TaskId = Annotated[
    str | None,
    Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_task_id),
]


class TaskRequest(BaseModel):
    """What to run: the prompt, and optionally the agent, project, task id and time limit.

    The task id is the id of the Claude Code session the task runs as (a UUID), so that an
    import or a hook of that session records the same task; a new one when it is left out.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: Text = Field(min_length=1, max_length=200_000)
    agent: Name = None
    project_id: Name = None
    task_id: TaskId = None
    timeout: float | None = Field(default=None, gt=0, le=MAX_TASK_SECONDS)
    max_cost: float | None = Field(
        default=None,
        gt=0,
        le=MAX_COST_USD,
        allow_inf_nan=False,
        description="USD: the run is stopped, and fails, once what it streamed costs more.",
    )


async def post_task(request: Request) -> Response:
    """Run the task to its end (the request waits) and answer with its outcome and task id.

    A task that failed is still a 200: its `status` and `error` say how it ended, and one
    stopped for passing its `max_cost` failed, keeping what it spent. It needs an API key of
    scope admin; one bound to a project runs tasks of that project only, and never under the id
    of another project's task (403). A task id that has run before is a 409: a task is one
    Claude Code session, which runs once; so is a task that a spent deny budget on its agent,
    its project or everything forbids (the budgets named, nothing run).
    """
    principal = principal_of(request)
    try:
        principal.require(Scope.ADMIN)
        task = TaskRequest.model_validate(orjson.loads(await request.body()))
        project_id = principal.project(task.project_id)
    except Forbidden as error:
        return forbidden(error)
    except orjson.JSONDecodeError as error:
        return problem(400, f"the request body is not valid JSON: {error}")
    except ValidationError as error:
        return problem(422, "the task request is invalid", validation_problems(error))
    services = request.app.state.services
    refusal = await task_budget_refusal(services, agent=task.agent, project_id=project_id)
    if refusal is not None:
        return refusal
    try:
        result = await run_in_threadpool(
            run_task,
            task.prompt,
            tracker=services.tracker,
            agent=task.agent,
            project_id=project_id,
            task_id=task.task_id,
            timeout=task.timeout,
            settings=services.settings,
            registry=services.engine,
            max_cost=task.max_cost,
        )
    except InvalidTask as error:
        problems = [{"field": error.field, "message": error.message}]
        return problem(422, "the task request is invalid", problems)
    except TaskIdTaken as taken:
        return _taken(principal, taken)
    return JSONResponse(result.to_dict())


def _taken(principal: Principal, taken: TaskIdTaken) -> Response:
    """403 when the task id belongs to another project than the caller's key, else 409."""
    if principal.project_id is not None and taken.projects - {principal.project_id}:
        message = (
            f"task {taken.task_id} belongs to another project than this API key's "
            f"({principal.project_id!r}); nothing was run"
        )
        return forbidden(Forbidden(message, field="task_id"))
    return problem(409, f"{taken}; nothing was run", [{"field": "task_id", "message": str(taken)}])
