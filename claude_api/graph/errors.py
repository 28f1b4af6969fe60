"""Turn exceptions raised by resolvers into GraphQL errors that say whose fault they are.

`InvalidFilter` and `InvalidEvents` become `BAD_USER_INPUT` (naming the field, or listing the
problems), `NotFound` becomes `NOT_FOUND` (with `suggestions`, the close names of an unknown
name), `Forbidden` `FORBIDDEN`, `EventConflict` `CONFLICT` (listing the events), `QueryTimeout`
`QUERY_TIMEOUT`, and any other exception is masked as "internal error".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from claude_api.errors import (
    EventConflict,
    Forbidden,
    InvalidEvents,
    InvalidFilter,
    NotFound,
    QueryTimeout,
)

if TYPE_CHECKING:
    from strawberry.types import ExecutionContext

logger = logging.getLogger(__name__)

# Exceptions that describe a mistake of the client, each turned into an error with a code.
CLIENT_ERRORS = (InvalidFilter, InvalidEvents, NotFound, Forbidden, EventConflict, QueryTimeout)

BAD_USER_INPUT = "BAD_USER_INPUT"
NOT_FOUND = "NOT_FOUND"
FORBIDDEN = "FORBIDDEN"
CONFLICT = "CONFLICT"
QUERY_TIMEOUT = "QUERY_TIMEOUT"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
INTERNAL_ERROR_MESSAGE = "internal error"


def is_unexpected_error(error: GraphQLError) -> bool:
    """Whether `error` wraps an exception that is a fault of the server, not of the request."""
    original = error.original_error
    if original is None or isinstance(original, (GraphQLError, *CLIENT_ERRORS)):
        return False
    # A scalar that rejects a variable value or an argument literal raises ValueError or TypeError
    # before execution starts; graphql-core reports it at the offending node and without a path.
    return error.path is not None or not error.nodes


def _rebuild(
    error: GraphQLError,
    message: str,
    extensions: dict[str, Any],
    original_error: Exception | None,
) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original_error,
        extensions={**(error.extensions or {}), **extensions},
    )


def translate_error(error: GraphQLError) -> GraphQLError:
    """Return `error` with a code if it wraps a domain exception, masked if it is unexpected.

    Any other error (parse, validation, a `GraphQLError` raised on purpose) is returned unchanged.
    """
    original = error.original_error
    if isinstance(original, InvalidFilter):
        code = {"code": BAD_USER_INPUT, "field": original.field}
        return _rebuild(error, str(original), code, original)
    if isinstance(original, InvalidEvents):
        code = {"code": BAD_USER_INPUT, "problems": original.problems}
        return _rebuild(error, str(original), code, original)
    if isinstance(original, NotFound):
        extensions = {"code": NOT_FOUND}
        if original.suggestions is not None:
            extensions["suggestions"] = list(original.suggestions)
        return _rebuild(error, str(original), extensions, original)
    if isinstance(original, Forbidden):
        extensions: dict[str, Any] = {"code": FORBIDDEN}
        if original.field is not None:
            extensions["field"] = original.field
        if original.problems is not None:
            extensions["problems"] = original.problems
        return _rebuild(error, str(original), extensions, original)
    if isinstance(original, EventConflict):
        code = {"code": CONFLICT, "problems": original.problems}
        return _rebuild(error, str(original), code, original)
    if isinstance(original, QueryTimeout):
        return _rebuild(error, str(original), {"code": QUERY_TIMEOUT}, original)
    if is_unexpected_error(error):
        # Dropping the original exception keeps its text and traceback out of every response.
        return _rebuild(error, INTERNAL_ERROR_MESSAGE, {"code": INTERNAL_SERVER_ERROR}, None)
    return error


def _needs_translation(error: GraphQLError) -> bool:
    return isinstance(error.original_error, CLIENT_ERRORS) or is_unexpected_error(error)


class DomainErrors(MaskErrors):
    """Schema extension that applies `translate_error` to the errors of every operation.

    Pass the class itself in `strawberry.Schema(extensions=[...])` so each request gets its own.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=_needs_translation, error_message=INTERNAL_ERROR_MESSAGE)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        """Translate one error (MaskErrors calls this for each error `_needs_translation` picks)."""
        return translate_error(error)


def log_errors(
    errors: Sequence[GraphQLError], execution_context: ExecutionContext | None = None
) -> None:
    """Log unexpected errors at ERROR with their traceback, and client errors at DEBUG only.

    Meant to be the schema's `process_errors`, which Strawberry calls before extensions translate
    the errors; its default logs every error, a mistyped field name included, at ERROR.
    """
    operation = execution_context.operation_name if execution_context else None
    for error in errors:
        if is_unexpected_error(error):
            logger.error(
                "GraphQL operation %s failed at %s: %s",
                operation or "(anonymous)",
                ".".join(map(str, error.path or ())) or "(no path)",
                error.message,
                exc_info=error.original_error,
            )
        else:
            logger.debug("GraphQL client error: %s", error.message)
