"""Read sessions with a deadline that the database enforces: SQLite through a progress handler,
PostgreSQL through `statement_timeout`. A costly question is stopped, not merely abandoned, so
it frees its worker thread and its connection too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from weakref import WeakSet

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from claude_api.errors import QueryTimeout

# SQLite calls the progress handler every this many virtual machine instructions (~0.1 ms).
SQLITE_PROGRESS_STEPS = 1000
_POSTGRES_CANCELED = "57014"  # query_canceled: statement_timeout ran out
TIMEOUT_MESSAGE = (
    "the query ran past its time limit and was stopped; ask about less (a shorter range, one "
    "project or one name)"
)
# The deadline of the session that holds a pooled connection, in the connection's `info`.
_DEADLINE = "claude_api.deadline"
_ENFORCING: WeakSet[Engine] = WeakSet()
_ENFORCING_LOCK = threading.Lock()


@contextmanager
def deadline_session(engine: Engine, deadline: float | None) -> Iterator[Session]:
    """A read session whose statements stop at `deadline` (a `time.monotonic()` value) with
    QueryTimeout; None means no limit.

    SQLite checks the deadline while a statement runs. PostgreSQL gives each statement the time
    left when the session began, and no statement starts after the deadline, so a session of n
    statements ends within about n times the time left.
    """
    with Session(engine) as session:
        if deadline is None:
            yield session
            return
        _enforce(engine)
        connection = session.connection()
        _check(deadline)
        _limit(connection, deadline)
        try:
            yield session
        except OperationalError as error:
            if time.monotonic() >= deadline and _stopped(error):
                raise QueryTimeout(TIMEOUT_MESSAGE) from None
            raise


def _enforce(engine: Engine) -> None:
    """Listen, once per engine, for statements (none starts past its session's deadline) and for
    connections going back to the pool (their deadline ends with the session that held them).
    Listeners added per session would cost more than a short query."""
    if engine in _ENFORCING:
        return
    with _ENFORCING_LOCK:
        if engine not in _ENFORCING:
            sa.event.listen(engine, "before_cursor_execute", _before_statement)
            sa.event.listen(engine, "checkin", _on_checkin)
            _ENFORCING.add(engine)


def _before_statement(connection: sa.Connection, *_args: Any) -> None:
    deadline = connection.info.get(_DEADLINE)
    if deadline is not None:
        _check(deadline)


def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    limited = record.info.pop(_DEADLINE, None) is not None
    if limited and hasattr(dbapi_connection, "set_progress_handler"):
        dbapi_connection.set_progress_handler(None, 0)


def _limit(connection: sa.Connection, deadline: float) -> None:
    """Make the database stop this connection's statements at `deadline`, until the connection
    goes back to the pool."""
    connection.info[_DEADLINE] = deadline
    if connection.dialect.name == "postgresql":
        milliseconds = max(1, int((deadline - time.monotonic()) * 1000))
        # Transaction-local (is_local true): the setting ends with the session's transaction.
        connection.execute(
            sa.text("SELECT set_config('statement_timeout', :value, true)"),
            {"value": f"{milliseconds}ms"},
        )
    elif connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        # A true return value interrupts the statement: sqlite3 raises "interrupted".
        raw.set_progress_handler(lambda: time.monotonic() >= deadline, SQLITE_PROGRESS_STEPS)


def _check(deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise QueryTimeout(TIMEOUT_MESSAGE)


def _stopped(error: OperationalError) -> bool:
    original = error.orig
    return getattr(original, "sqlstate", None) == _POSTGRES_CANCELED or "interrupted" in str(
        original
    )
