"""The REST GETs under /v1: each parses its request into one `UsageFilter`, asks the read
gateway for one query-layer function's answer and answers with it as JSON, keys in snake_case.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from claude_api.errors import Forbidden, InvalidFilter, NotFound, QueryTimeout
from claude_api.events import Kind
from claude_api.models import queries, results
from claude_api.models.filters import MAX_TOP
from claude_api.models.keys import Scope
from claude_api.models.results import (
    HistoryBucket,
    HistoryScope,
    LeaderboardEntry,
    Page,
    Report,
    TaskInvocation,
    TaskSummary,
    UsageStats,
    UsageTotals,
)
from claude_api.server.auth import principal_of
from claude_api.server.openapi import NotFoundBody, openapi_endpoint
from claude_api.server.responses import JSONResponse, forbidden, problem, render_json
from claude_api.server.rest_params import (
    AFTER,
    AGENT,
    BY,
    DATE,
    FILTERS,
    KIND,
    MIN_INVOCATIONS,
    MODEL,
    NAME,
    PERIOD,
    PROJECT,
    SKILL,
    STATUS,
    TASK_ID,
    TOP_ERRORS,
    TOP_FAILURES,
    TZ,
    limit,
)
from claude_api.server.rest_query import InvalidQuery, Param, ParsedQuery, parse_request
from claude_api.server.services import Services

T = TypeVar("T")
# Where the routes of `operations` are: the HTTP edge gives their answers ETags.
PATH_PREFIXES = ("/v1/agents", "/v1/skills", "/v1/analytics/", "/v1/tasks")
REPORT_RANGE = "a report covers one whole day, week or month: use date and period instead"


@dataclass(frozen=True, kw_only=True)
class Leaderboard:
    """The top agents or skills by a metric, highest first."""

    items: tuple[LeaderboardEntry, ...]


@dataclass(frozen=True, kw_only=True)
class TaskInvocations:
    """Every agent and skill invocation of one task, in start order."""

    task_id: str
    invocations: tuple[TaskInvocation, ...]


Handler = Callable[[Request, "Operation"], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One GET endpoint: its route and its OpenAPI description are both made from this.

    `path` is the OpenAPI path template; `handler` returns the 200 body, of type `response`.
    `kind` is fixed by the route (`/v1/agents/...`); `refused` maps a parameter the endpoint
    does not take, though one might expect it, to the reason.
    """

    name: str
    path: str
    summary: str
    tag: str
    handler: Handler
    params: tuple[Param, ...]
    response: Any
    kind: Kind | None = None
    not_found: bool = False
    refused: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def description(self) -> str:
        """The handler's docstring."""
        return inspect.getdoc(self.handler) or ""


@dataclass(frozen=True, kw_only=True)
class History(HistoryScope):
    """A history as the REST surface answers it: one object per bucket."""

    buckets: tuple[HistoryBucket, ...]
    totals: UsageTotals

    @classmethod
    def of(cls, history: results.History) -> History:
        fields = dataclasses.fields(cls)
        return cls(**{field.name: getattr(history, field.name) for field in fields})


def _parse(request: Request, operation: Operation) -> ParsedQuery:
    """The request's parameters."""
    fixed = {"kind": operation.kind} if operation.kind is not None else {}
    return parse_request(request, operation.params, fixed=fixed, refused=operation.refused)


async def _run(
    request: Request, query: ParsedQuery, function: Callable[..., T], /, **arguments: Any
) -> T:
    """`Gateway.answer`: `function`'s answer for the caller, its reads stopped at the request's
    deadline, its errors naming the request's parameters."""
    services: Services = request.app.state.services
    return await services.gateway.answer(
        principal_of(request),
        function,
        deadline=services.query_deadline(),
        names=query.param_of,
        **arguments,
    )


async def get_analytics(request: Request, operation: Operation) -> UsageStats:
    """Statistics of one agent or skill over its invocations that match the filters: counts by
    status, success rate (completed / finished), cost (null when no invocation reports one;
    `unpriced_invocations` counts those without), tokens (input, output, cache creation, cache
    read and their total; input and output averages), durations (average, nearest-rank p50,
    p95 and p99) and its most frequent error messages.

    404 when the name was never recorded (not merely quiet in the range), with close names.
    """
    query = _parse(request, operation)
    return await _run(request, query, queries.usage_stats, filter=query.filter, **query.options)


async def get_history(request: Request, operation: Operation) -> History:
    """One agent's or skill's invocations per calendar day, ISO week or month in `tz`, empty
    buckets included; the first and last buckets are clipped to [since, until).

    Without `until` the range ends now; without `since` it starts 30 days, 12 weeks or 12
    months back. 404 when the name was never recorded, with close names.
    """
    query = _parse(request, operation)
    options = query.options
    return History.of(
        await _run(request, query, queries.usage_by_period, filter=query.filter, **options)
    )


async def get_leaderboard(request: Request, operation: Operation) -> Leaderboard:
    """The top agents or skills by a metric, highest first; ties are broken by name.

    Only those with at least `min_invocations` matching invocations take part, and one without
    a value for the metric (no finished run, no measured duration, no reported cost) is left out.
    """
    query = _parse(request, operation)
    entries = await _run(request, query, queries.leaderboard, filter=query.filter, **query.options)
    return Leaderboard(items=tuple(entries))


async def get_stats_page(request: Request, operation: Operation) -> Page[UsageStats]:
    """The statistics of every agent or skill with an invocation matching the filters, by name
    (code point order), a page at a time: pass `next_cursor` as `after` for the next page.
    """
    query = _parse(request, operation)
    return await _run(request, query, queries.stats_by_name, filter=query.filter, **query.options)


async def get_report(request: Request, operation: Operation) -> Report:
    """A day, ISO week or month in `tz` (the one holding `date`, default today) against the
    period before it: totals, a row per agent and per skill, the most frequent failures, and
    the change in invocations, cost and success rate.

    The period sets the range, so `since` and `until` are refused (400): use `date` and
    `period`. A period without invocations is an empty report, not a 404.
    """
    query = _parse(request, operation)
    return await _run(request, query, queries.usage_report, filter=query.filter, **query.options)


async def get_tasks(request: Request, operation: Operation) -> Page[TaskSummary]:
    """Tasks with an invocation matching the filters, the most recently active first; with
    `agent` or `skill`, the tasks that used it. The filters choose the tasks; each summary
    covers the whole task: all its invocations (of the project, with `project`), their
    status, duration, cost and tokens, and the agents and skills it used. Pass `next_cursor`
    as `after` for the next page.
    """
    query = _parse(request, operation)
    return await _run(request, query, queries.list_tasks, filter=query.filter, **query.options)


async def get_task(request: Request, operation: Operation) -> TaskInvocations:
    """Every agent and skill invocation of one task, in start order; `parent_id` links each
    to the invocation that ran it, and `total_cost_usd` is the cost of its subtree (itself and
    all it ran). 404 when the task has no recorded invocation.
    """
    query = _parse(request, operation)
    project = query.filter.project_id  # narrowed to the caller's by the gateway
    usage = await _run(request, query, queries.list_task_usage, project_id=project, **query.options)
    return TaskInvocations(task_id=query.options["task_id"], invocations=tuple(usage))


def operations() -> list[Operation]:
    """Every REST GET, in routing order."""
    found: list[Operation] = []
    for kind in Kind:
        noun, plural = kind.value, f"{kind.value}s"
        found += [
            Operation(
                name=f"list_{plural}",
                path=f"/v1/{plural}",
                summary=f"Statistics of every {noun}",
                tag=plural,
                handler=get_stats_page,
                params=(limit(50), AFTER, TOP_ERRORS, *FILTERS),
                response=Page[UsageStats],
                kind=kind,
            ),
            Operation(
                name=f"{noun}_leaderboard",
                path=f"/v1/{plural}/leaderboard",
                summary=f"The top {plural} by a metric",
                tag=plural,
                handler=get_leaderboard,
                params=(BY, limit(10, MAX_TOP), MIN_INVOCATIONS, *FILTERS),
                response=Leaderboard,
                kind=kind,
            ),
            Operation(
                name=f"{noun}_analytics",
                path=f"/v1/{plural}/{{name}}/analytics",
                summary=f"Statistics of one {noun}",
                tag=plural,
                handler=get_analytics,
                params=(NAME, TOP_ERRORS, *FILTERS),
                response=UsageStats,
                kind=kind,
                not_found=True,
            ),
            Operation(
                name=f"{noun}_history",
                path=f"/v1/{plural}/{{name}}/history",
                summary=f"One {noun}'s invocations per day, week or month",
                tag=plural,
                handler=get_history,
                params=(NAME, PERIOD, *FILTERS),
                response=History,
                kind=kind,
                not_found=True,
            ),
        ]
    return [
        *found,
        Operation(
            name="usage_report",
            path="/v1/analytics/report",
            summary="A day, week or month against the previous one",
            tag="analytics",
            handler=get_report,
            params=(PERIOD, DATE, KIND, TOP_FAILURES, PROJECT, MODEL, STATUS, TZ),
            response=Report,
            refused={"since": REPORT_RANGE, "until": REPORT_RANGE},
        ),
        Operation(
            name="list_tasks",
            path="/v1/tasks",
            summary="Tasks, most recent first; with agent or skill, the tasks that used it",
            tag="tasks",
            handler=get_tasks,
            params=(AGENT, SKILL, limit(50), AFTER, *FILTERS),
            response=Page[TaskSummary],
        ),
        Operation(
            name="task",
            path="/v1/tasks/{task_id}",
            summary="Every invocation of one task",
            tag="tasks",
            handler=get_task,
            params=(TASK_ID,),
            response=TaskInvocations,
            not_found=True,
        ),
    ]


def rest_routes() -> list[BaseRoute]:
    """The routes of the REST GETs and of `/openapi.json` that describes them.

    The app must set `app.state.services` (a `Services`) before serving a request.
    """
    found = operations()
    routes: list[BaseRoute] = [
        Route(_route_path(op.path), _endpoint(op), methods=["GET"], name=op.name) for op in found
    ]
    routes.append(Route("/openapi.json", openapi_endpoint(found), methods=["GET"], name="openapi"))
    return routes


def _route_path(template: str) -> str:
    # The `path` convertor lets a name or task id hold '/' (decoded from %2F or sent as is).
    return re.sub(r"\{(\w+)\}", r"{\1:path}", template)


def _endpoint(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            principal_of(request).require(Scope.READ)
            body = await operation.handler(request, operation)
        except Forbidden as error:
            return forbidden(error)
        except InvalidQuery as error:
            return problem(400, error.message, error.errors)
        except InvalidFilter as error:
            return problem(400, str(error), [{"field": error.field, "message": error.message}])
        except NotFound as error:
            body = NotFoundBody(message=str(error), suggestions=error.suggestions or ())
            return JSONResponse(body, status_code=404)
        except QueryTimeout as error:
            return problem(503, str(error))
        return Response(render_json(body), media_type=JSONResponse.media_type)

    endpoint.__name__ = endpoint.__qualname__ = operation.name
    endpoint.__doc__ = operation.description
    return endpoint
