"""GET /v1/invocations/export: every invocation matching the filters, streamed as CSV or JSON
Lines straight from the query layer in start order, in constant memory; what
`claude-api analytics export --url` downloads. A read key may export; a key bound to a project
exports that project's invocations only.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from claude_api.errors import Forbidden, InvalidFilter
from claude_api.exports import MEDIA_TYPES, ExportFormat, stream_rows
from claude_api.models.filters import UsageFilter, to_enum
from claude_api.models.keys import Scope
from claude_api.models.queries import iter_invocation_rows
from claude_api.server.auth import principal_of
from claude_api.server.responses import forbidden, problem
from claude_api.server.rest_params import FILTERS, KIND, _text
from claude_api.server.rest_query import InvalidQuery, Param, parse_request
from claude_api.server.services import Services

logger = logging.getLogger(__name__)

EXPORT_PATH = "/v1/invocations/export"


def _format(text: str, zone: ZoneInfo) -> ExportFormat:
    return to_enum(ExportFormat, text, field="")


FORMAT = Param(
    name="format",
    description="csv (a header row, formula-like cells escaped with a quote) or jsonl.",
    schema={"type": "string", "enum": [choice.value for choice in ExportFormat]},
    parse=_format,
    option="format",
    default=ExportFormat.CSV,
)
NAME = Param(
    name="name",
    description="Only this agent's or skill's invocations.",
    schema={"type": "string", "minLength": 1},
    parse=_text,
    field="name",
)
PARAMS = (FORMAT, KIND, NAME, *FILTERS)


async def export_invocations(request: Request) -> Response:
    """Every invocation matching the filters, one row each, in start order (ties by kind, then
    event id), as CSV or JSON Lines with the usage event's field names."""
    principal = principal_of(request)
    try:
        principal.require(Scope.READ)
        query = parse_request(request, PARAMS)
        scope = principal.restrict(query.filter)
    except Forbidden as error:
        return forbidden(error)
    except InvalidQuery as error:
        return problem(400, error.message, error.errors)
    chosen: ExportFormat = query.options["format"]
    services: Services = request.app.state.services
    return StreamingResponse(
        _rows(services, scope, chosen),
        media_type=MEDIA_TYPES[chosen],
        headers={"Content-Disposition": f'attachment; filename="invocations.{chosen.value}"'},
    )


def _rows(services: Services, scope: UsageFilter, chosen: ExportFormat) -> Iterator[str]:
    # A sync iterator: Starlette reads it in a worker thread, so the database work stays off the
    # event loop. No deadline: an export takes as long as its rows.
    with services.session() as session:
        try:
            rows = iter_invocation_rows(
                session, filter=scope, escape_formulas=chosen is ExportFormat.CSV
            )
            yield from stream_rows(rows, chosen)
        except InvalidFilter as error:  # after the 200: the client sees a cut stream
            logger.error("export stopped: %s", error)
            raise


def export_routes() -> list[BaseRoute]:
    """The export route; the app must set `app.state.services`."""
    return [Route(EXPORT_PATH, export_invocations, methods=["GET"], name="export_invocations")]


def openapi_paths(problem_ref: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The OpenAPI path item of the export route."""
    rows = {"type": "string", "description": "One invocation a line (CSV after a header row)."}
    return {
        EXPORT_PATH: {
            "get": {
                "operationId": "export_invocations",
                "summary": "Every invocation, streamed as CSV or JSON Lines",
                "description": inspect.getdoc(export_invocations) or "",
                "tags": ["analytics"],
                "parameters": [
                    {
                        "name": param.name,
                        "in": "query",
                        "required": False,
                        "description": param.description,
                        "schema": dict(param.schema),
                    }
                    for param in PARAMS
                ],
                "responses": {
                    "200": {
                        "description": "The rows, streamed in start order.",
                        "content": {media: {"schema": rows} for media in MEDIA_TYPES.values()},
                    },
                    "400": {
                        "description": "A parameter is unknown, repeated or invalid; `errors` "
                        "names each.",
                        "content": {"application/json": {"schema": problem_ref}},
                    },
                },
            }
        }
    }
