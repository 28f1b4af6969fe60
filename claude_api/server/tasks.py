"""`POST /v1/task`: run a task with Claude Code through the agentic executor and return it."""

from __future__ import annotations

from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from claude_api.errors import Forbidden
from claude_api.executor import run_task
from claude_api.models.events import MAX_NAME_LENGTH, validation_problems
from claude_api.models.keys import Scope
from claude_api.server.auth import principal_of
from claude_api.server.responses import JSONResponse, forbidden, problem

MAX_TASK_SECONDS = 24 * 3600

Name = Annotated[str | None, Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)]


class TaskRequest(BaseModel):
    """What to run: the prompt, and optionally the agent, project, task id and time limit."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=200_000)
    agent: Name = None
    project_id: Name = None
    task_id: Name = None
    timeout: float | None = Field(default=None, gt=0, le=MAX_TASK_SECONDS)


async def post_task(request: Request) -> Response:
    """Run the task to its end (the request waits) and answer with its outcome and task id.

    A task that failed is still a 200: its `status` and `error` say how it ended. It needs an
    API key of scope admin; one bound to a project runs tasks of that project only.
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
    result = await run_in_threadpool(
        run_task,
        task.prompt,
        tracker=services.tracker,
        agent=task.agent,
        project_id=project_id,
        task_id=task.task_id,
        timeout=task.timeout,
        settings=services.settings,
    )
    return JSONResponse(result.to_dict())
