"""JSON responses of the REST surface: orjson-encoded data and errors that name the field."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    """A JSON response encoded with orjson (dataclasses, datetimes and UUIDs included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


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
