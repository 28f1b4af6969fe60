"""Plain JSON endpoints that are not analytics GETs (budgets, alert rules): each declared once as
an `Endpoint`, from which both its route and its OpenAPI description are made, with the checks
they share: the caller's scope, known query parameters, JSON bodies, reads and committed writes
in worker threads, and errors as JSON problems.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from claude_api.access import Principal
from claude_api.errors import Forbidden, InvalidFilter, NotFound, QueryTimeout
from claude_api.events import validation_problems
from claude_api.models.db import write_engine
from claude_api.models.keys import Scope
from claude_api.server.auth import principal_of
from claude_api.server.responses import forbidden, problem
from claude_api.server.services import Services

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
JSON = "application/json"


# Rows are numbered by 32-bit integer keys on PostgreSQL: a larger id names no row.
MAX_ROW_ID = 2**31 - 1


@dataclass(frozen=True)
class QueryParam:
    """A path or query parameter as the OpenAPI document describes it."""

    name: str
    description: str
    schema: Mapping[str, Any]
    location: str = "query"


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One route: `handler` answers `response` with `status`; `errors` are the other statuses
    it may answer (besides 401/403/413, which every route with a key may), with their
    meaning. `path` is the OpenAPI template; a `{name}` in it matches text with slashes."""

    path: str
    method: str
    name: str
    summary: str
    tag: str
    handler: Callable[[Request], Awaitable[Response]]
    response: Any
    status: int = 200
    params: tuple[QueryParam, ...] = ()
    body: type[BaseModel] | None = None
    errors: Mapping[int, str] = field(default_factory=dict)


class Refused(Exception):
    """A request answered with an error before (or instead of) its work."""

    def __init__(self, response: Response) -> None:
        self.response = response


def caller(request: Request, needed: Scope) -> Principal:
    """The caller, if its key's scope allows what needs `needed` (403 otherwise)."""
    principal = principal_of(request)
    try:
        principal.require(needed)
    except Forbidden as error:
        raise Refused(forbidden(error)) from None
    return principal


def query(request: Request, *, allowed: set[str]) -> dict[str, str]:
    """The query parameters, each once; an unknown or repeated one is refused (400)."""
    items = request.query_params.multi_items()
    problems = [
        {"field": key, "message": "unknown parameter" if key not in allowed else "given twice"}
        for index, (key, _) in enumerate(items)
        if key not in allowed or any(other == key for other, _ in items[:index])
    ]
    if problems:
        known = ", ".join(sorted(allowed)) or "none"
        raise Refused(
            problem(400, f"unknown or repeated query parameters (known: {known})", problems)
        )
    if any("\x00" in value for _, value in items):
        raise Refused(problem(400, "a query parameter holds a NUL character"))
    return dict(items)


def instant(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 time with an offset (400 otherwise); None stays None."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        message = f"must be an ISO 8601 time with an offset, got {value[:100]!r}"
        raise Refused(problem(400, f"{field} {message}", [{"field": field, "message": message}]))
    return moment


async def json_body(request: Request, model: type[M], what: str) -> M:
    """The request's JSON body as `model`: 415 for another media type, 400 for what is not
    JSON, 422 (each field named) for what `model` refuses."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise Refused(problem(415, f"send the body as {JSON}"))
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise Refused(problem(400, f"the request body is not valid JSON: {error}")) from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise Refused(problem(422, f"the {what} is invalid", validation_problems(error))) from None


def project_of(
    principal: Principal, requested: str | None, field: str = "project_id"
) -> str | None:
    """The project a request is about, for the caller's key (403 for another project)."""
    try:
        return principal.project(requested, field=field)
    except Forbidden as error:
        raise Refused(forbidden(error)) from None


async def read(request: Request, work: Callable[[Session], T]) -> T:
    """`work(session)` in a worker thread, stopped at the request's deadline (503)."""
    services: Services = request.app.state.services
    deadline = services.query_deadline()

    def run() -> T:
        with services.session(deadline=deadline) as session:
            return work(session)

    try:
        return await services.run(run)
    except InvalidFilter as error:
        raise Refused(problem(400, str(error), [_field(error)])) from None
    except QueryTimeout as error:
        raise Refused(problem(503, str(error))) from None


async def write(request: Request, work: Callable[[Session], T]) -> T:
    """`work(session)` in a worker thread, committed: 422 for what the model refuses, 404 for
    what is not there."""
    services: Services = request.app.state.services

    def run() -> T:
        with Session(write_engine(services.engine)) as session:
            result = work(session)
            session.commit()
            return result

    try:
        return await services.run(run)
    except InvalidFilter as error:
        raise Refused(problem(422, str(error), [_field(error)])) from None
    except NotFound as error:
        raise Refused(problem(404, str(error))) from None


def _field(error: InvalidFilter) -> dict[str, str]:
    return {"field": error.field, "message": error.message}


def routes(endpoints: list[Endpoint]) -> list[Route]:
    """A route per endpoint, answering its refusals."""
    return [
        Route(_route_path(endpoint.path), _answering(endpoint.handler), methods=[endpoint.method])
        for endpoint in endpoints
    ]


def _route_path(template: str) -> str:
    return template.replace("{name}", "{name:path}")


def _answering(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as refused:
            return refused.response

    endpoint.__name__ = endpoint.__qualname__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def openapi_paths(
    endpoints: list[Endpoint], ref: Callable[..., dict[str, Any]], problem_ref: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The OpenAPI path items of `endpoints`; `ref(type, mode)` gives a type's schema."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        responses = {
            str(endpoint.status): _content(_first_line(endpoint.response), ref(endpoint.response))
        }
        for status, meaning in sorted(endpoint.errors.items()):
            # Another success answers the same body; an error, a problem.
            schema = ref(endpoint.response) if status < 400 else problem_ref
            responses[str(status)] = _content(meaning, schema)
        operation: dict[str, Any] = {
            "operationId": endpoint.name,
            "summary": endpoint.summary,
            "description": inspect.getdoc(endpoint.handler) or "",
            "tags": [endpoint.tag],
            "parameters": [
                {
                    "name": param.name,
                    "in": param.location,
                    "required": param.location == "path",
                    "description": param.description,
                    "schema": dict(param.schema),
                }
                for param in endpoint.params
            ],
            "responses": responses,
        }
        if endpoint.body is not None:
            schema = ref(endpoint.body, "validation")
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return paths


def schema_types(endpoints: list[Endpoint]) -> list[tuple[Any, str]]:
    """The types whose schemas `openapi_paths` refers to, with their modes."""
    found: list[tuple[Any, str]] = []
    for endpoint in endpoints:
        found.append((endpoint.response, "serialization"))
        if endpoint.body is not None:
            found.append((endpoint.body, "validation"))
    return list(dict.fromkeys(found))


def _content(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _first_line(kind: Any) -> str:
    doc = inspect.getdoc(kind) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())
