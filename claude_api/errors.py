"""Domain exceptions that the API, the CLI and the tracker translate for their users."""

from __future__ import annotations


class ClaudeApiError(Exception):
    """Base class of every error this package raises on purpose."""


class TrackingError(ClaudeApiError):
    """The store could not record events (database locked, unwritable or down)."""


class NotFound(ClaudeApiError):
    """The named agent, skill or task has no recorded invocation."""


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
