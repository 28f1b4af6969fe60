"""JSON responses of the REST surface: orjson-encoded data and errors that name the field."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from claude_api.errors import Forbidden


def render_json(content: Any) -> bytes:
    """`content` as JSON, encoded with orjson (dataclasses, datetimes and UUIDs included)."""
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class JSONResponse(Response):
    """A JSON response encoded with orjson (dataclasses, datetimes and UUIDs included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return render_json(content)


def problem(
    status_code: int,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An error body: a sentence for people and, per problem, the field it is about; `extra`
    adds keys (e.g. `suggestions`)."""
    body: dict[str, Any] = {"message": message, **extra}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status_code)


def refusal(
    graphql: bool,
    status_code: int,
    message: str,
    *,
    code: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A request refused before it reached its handler (no API key, too large a body): a
    GraphQL error body with `code` for the GraphQL endpoint, else a `problem`."""
    if graphql:
        body = {"errors": [{"message": message, "extensions": {"code": code}}]}
        response = JSONResponse(body, status_code=status_code)
    else:
        response = problem(status_code, message)
    response.headers.update(headers or {})
    return response


def forbidden(error: Forbidden) -> JSONResponse:
    """403 for what the caller's API key may not do, naming the field or listing the events."""
    errors = error.problems
    if errors is None and error.field is not None:
        errors = [{"field": error.field, "message": str(error)}]
    return problem(403, str(error), errors)
