"""Domain exceptions that the API, the CLI and the tracker translate for their users."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


class ClaudeApiError(Exception):
    """Base class of every error this package raises on purpose."""


class TrackingError(ClaudeApiError):
    """The store could not record events (database locked, unwritable or down)."""


class NotFound(ClaudeApiError):
    """The named agent, skill or task has no recorded invocation; `suggestions` are the close
    names of a name looked up (None for a task)."""

    def __init__(self, message: str, *, suggestions: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.suggestions = suggestions


class InvalidFilter(ClaudeApiError):
    """A query parameter is out of range or malformed; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidEvents(ClaudeApiError):
    """Events failed validation; `problems` lists each as {"field", "message"}."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{len(problems)} problems in the events; nothing was stored")
        self.problems = problems


class Forbidden(ClaudeApiError):
    """The API key may not do this: its scope is too narrow, or the request is about another
    project than the one it is bound to; `field` names the offending input, `problems` lists
    each offending event as {"field", "message"}."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        problems: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.problems = problems


class QueryTimeout(ClaudeApiError):
    """A query ran past its time limit and the database stopped it."""


@dataclass(frozen=True)
class ConflictingEvent:
    """An event whose `event_id` names another invocation: `fields` are those of kind, name,
    task_id and project_id that differ from it, `positions` where the event stands in its
    batch (every occurrence of the id)."""

    event_id: UUID
    fields: tuple[str, ...]
    positions: tuple[int, ...]
    within_batch: bool = False


class EventConflict(ClaudeApiError):
    """Events carry the event ids of invocations of another kind, name, task or project (stored,
    or earlier in the same batch): they may not merge into those, so nothing of the batch was
    stored. The other invocation's values are never told, only which fields differ.
    `location` is how the surface named the batch (`events`, `event`, or empty for one event)."""

    def __init__(self, conflicts: list[ConflictingEvent], location: str = "events") -> None:
        shown = ", ".join(str(conflict.event_id) for conflict in conflicts[:3])
        more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        super().__init__(
            f"{len(conflicts)} event ids ({shown}{more}) belong to invocations of another kind, "
            "name, task or project; nothing was stored"
        )
        self.conflicts = conflicts
        self.location = location

    def at(self, location: str) -> EventConflict:
        """The same conflict, its events named under `location`."""
        return EventConflict(self.conflicts, location)

    @property
    def event_ids(self) -> set[UUID]:
        return {conflict.event_id for conflict in self.conflicts}

    @property
    def problems(self) -> list[dict[str, str]]:
        """Each offending event as {"field", "message"}, the field `events[3].event_id` for the
        event at position 3 of the batch (`event_id` when the location is empty)."""
        problems = []
        for conflict in self.conflicts:
            differing = ", ".join(conflict.fields)
            if conflict.within_batch:
                message = (
                    f"event_id {conflict.event_id} is used in this batch by an event with a "
                    f"different {differing}"
                )
            else:
                message = (
                    f"event_id {conflict.event_id} is recorded for an invocation with a "
                    f"different {differing}"
                )
            for position in conflict.positions:
                field = f"{self.location}[{position}].event_id" if self.location else "event_id"
                problems.append({"field": field, "message": message})
        return problems
