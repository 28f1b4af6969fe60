"""The read gateway: how GraphQL resolvers, REST handlers, the in-process CLI and the dashboard
read the database. One object per database owns the engine, the worker threads that keep
blocking work off the event loop, read sessions with a deadline (`timeouts`) that each read one
snapshot, and `answer`, where the caller's scope and project, the answer cache and the
translation of the query layer's errors meet.

The answer cache lives in the query layer (`queries._answer_cache`); what a surface needs of it is
here: `recording` tells the data version a response's answers were all read under (the HTTP
edge's ETag), `mark_uncacheable` marks a response that holds anything else.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.access import Principal
from claude_api.errors import Forbidden, InvalidFilter, NotFound
from claude_api.models import data_version
from claude_api.models.keys import Scope
from claude_api.models.queries import list_names
from claude_api.models.queries._answer_cache import (
    Record,
    caches_answers,
    computing_afresh,
    computing_again,
    mark_uncacheable,
    recording,
)
from claude_api.models.suggestions import close_names
from claude_api.models.timeouts import deadline_session

__all__ = [
    "Gateway",
    "Record",
    "caches_answers",
    "computing_afresh",
    "computing_again",
    "mark_uncacheable",
    "recording",
]

T = TypeVar("T")

# As many as Starlette's default thread limiter allows, so requests wait for threads as before.
WORKER_THREADS = 40

Names = Mapping[str, str] | Callable[[str], str]


class Gateway:
    """Reads of one database (and the blocking work of its surfaces, writes included, which
    run on the same worker threads). `timeout_seconds` bounds each request's reads (None: no
    limit, as in the CLI)."""

    def __init__(
        self,
        engine: Engine,
        *,
        timeout_seconds: float | None = None,
        threads: int = WORKER_THREADS,
    ) -> None:
        self.engine = engine
        self.timeout_seconds = timeout_seconds
        self._snapshots = _snapshot_engine(engine)
        self._workers = ThreadPoolExecutor(threads, thread_name_prefix="claude-api")
        data_version.watch(engine)

    def deadline(self) -> float | None:
        """The deadline of a request's reads that start now (a `time.monotonic()` value)."""
        if self.timeout_seconds is None:
            return None
        return time.monotonic() + self.timeout_seconds

    @contextmanager
    def session(self, *, deadline: float | None = None) -> Iterator[Session]:
        """A read session whose statements stop at `deadline` with QueryTimeout. On PostgreSQL
        it is a REPEATABLE READ transaction: an answer of several statements reads one
        snapshot, never half of a commit (SQLite's read transactions always do)."""
        with deadline_session(self._snapshots, deadline) as session:
            yield session

    async def run(self, function: Callable[[], T], /) -> T:
        """`function()` in one of the worker threads, in a copy of the caller's context
        variables: the one way blocking work leaves the event loop.

        The event loop's executor hands work over more cheaply than Starlette's
        `run_in_threadpool` (no capacity limiter or cancel scope per call).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, contextvars.copy_context().run, function)

    async def answer(
        self,
        principal: Principal,
        function: Callable[..., T],
        /,
        *,
        deadline: float | None = None,
        names: Names | None = None,
        **arguments: Any,
    ) -> T:
        """`function(session, **arguments)`, a query-layer function, for a caller allowed to
        read, in a worker thread with a session of its own that stops at `deadline`.

        Its `filter` or `project_id` argument is narrowed to the caller's project (Forbidden
        when it names another). `names` maps the query layer's field and argument names to the
        caller's (`limit` -> `first`), to name them in errors. A NotFound for a name carries the
        recorded names close to it.
        """
        principal.require(Scope.READ)
        rename = _renamer(names)
        try:
            if "filter" in arguments:
                arguments["filter"] = principal.restrict(arguments["filter"])
            if "project_id" in arguments:
                arguments["project_id"] = principal.project(arguments["project_id"])
        except Forbidden as error:
            raise Forbidden(str(error), field=rename(error.field or "project_id")) from None
        if not caches_answers(function):
            mark_uncacheable()

        def work() -> T:
            with self.session(deadline=deadline) as session:
                try:
                    return function(session, **arguments)
                except InvalidFilter as error:
                    raise InvalidFilter(rename(error.field), error.message) from None
                except NotFound as error:
                    scope = arguments.get("filter")
                    if getattr(scope, "name", None) is None:
                        raise
                    recorded = list_names(session, kind=scope.kind, project_id=scope.project_id)
                    close = close_names(scope.name, recorded)
                    raise NotFound(str(error), suggestions=close) from None

        return await self.run(work)

    async def latest_version(self) -> int | None:
        """The data version now (None before the first write): on a SQLite file at once, on the
        event loop (a check that would wait falls back to a worker thread); otherwise read in a
        worker thread."""
        try:
            return data_version.latest(self.engine)
        except data_version.Unknown:
            return await self.run(self._read_version)

    def _read_version(self) -> int | None:
        engine = self.engine
        if engine.dialect.name == "postgresql":
            # Autocommit: one round trip, without a BEGIN before the read and a ROLLBACK after.
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            return data_version.current(connection)

    def close(self) -> None:
        """Wait for the work under way, then stop watching the data version. The engine is
        its owner's to dispose of."""
        self._workers.shutdown(wait=True)
        data_version.unwatch(self.engine)


def _snapshot_engine(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        return engine
    # A client-side setting of the driver: the transaction begins with it, no round trip more.
    # Not read-only as well: the driver would then begin every later transaction on the
    # connection READ WRITE, overriding a server that is set read-only.
    return engine.execution_options(isolation_level="REPEATABLE READ")


def _renamer(names: Names | None) -> Callable[[str], str]:
    if names is None:
        return lambda name: name
    if callable(names):
        return names
    return lambda name: names.get(name, name)
