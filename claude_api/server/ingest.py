"""`POST /v1/events`: usage events from runners on other machines, through the same tracker.

A request holds one event or a batch `{"events": [...]}`. The batch is validated whole: one bad
event rejects it with every problem listed and nothing stored. An accepted batch is stored
before the response, so a 200 means the events are in the database.

It needs an API key of scope write or admin (when authentication is on). A key bound to a
project records that project's events only: an event without `project_id` is given the key's
project, and an event for another project rejects the batch with 403.

An event whose `event_id` belongs to a recorded invocation of another kind, name, task or
project (or to another event of the batch) rejects the batch with 409, naming each such event
and the fields that differ, never the other invocation's values: no caller can complete, move
or overwrite an invocation that is not its own.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from claude_api.errors import EventConflict, Forbidden, InvalidEvents, TrackingError
from claude_api.events import parse_events
from claude_api.models.keys import Scope
from claude_api.server.auth import principal_of
from claude_api.server.responses import JSONResponse, forbidden, problem

MAX_BATCH_EVENTS = 10_000


async def post_events(request: Request) -> Response:
    """Validate and store one event or a batch of events."""
    principal = principal_of(request)
    try:
        principal.require(Scope.WRITE)
    except Forbidden as error:
        return forbidden(error)
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        return problem(400, f"the request body is not valid JSON: {error}")
    items, location = _items(payload)
    if items is None:
        return problem(
            422, 'send one event object or a batch {"events": [...]}', [{"field": "body"}]
        )
    if len(items) > MAX_BATCH_EVENTS:
        return problem(
            422,
            f"a batch holds at most {MAX_BATCH_EVENTS} events, got {len(items)}",
            [{"field": "events", "message": "too many events"}],
        )
    try:
        events = principal.claim(parse_events(items, location), location)
    except InvalidEvents as error:
        return problem(422, str(error), error.problems)
    except Forbidden as error:
        return forbidden(error)
    try:
        services = request.app.state.services
        await services.run(lambda: services.tracker.record(events))
    except EventConflict as error:
        return problem(409, str(error), error.at(location).problems)
    except TrackingError as error:
        return problem(503, f"the database could not store the events: {error}")
    return JSONResponse({"received": len(events)})


def _items(payload: Any) -> tuple[list[Any] | None, str]:
    if isinstance(payload, dict) and set(payload) == {"events"}:
        events = payload["events"]
        return (events if isinstance(events, list) else None), "events"
    if isinstance(payload, dict):
        return [payload], ""
    return None, ""
