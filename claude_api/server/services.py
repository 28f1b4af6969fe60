"""What the server's handlers share: settings, the database engine, the tracker, the API key
verifier and the worker threads that run the REST handlers' blocking calls."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.models import data_version
from claude_api.models.db import make_engine, upgrade
from claude_api.models.timeouts import deadline_session
from claude_api.server.auth import KeyVerifier
from claude_api.tracking import Tracker, build_tracker

T = TypeVar("T")

# As many as Starlette's default thread limiter allows, so requests wait for threads as before.
WORKER_THREADS = 40


@dataclass
class Services:
    """Built once per app; reached from a request as `request.app.state.services`."""

    settings: Settings
    engine: Engine
    tracker: Tracker
    key_verifier: KeyVerifier = field(init=False)
    _workers: ThreadPoolExecutor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key_verifier = KeyVerifier(self.engine, ttl=self.settings.auth_cache_seconds)
        self._workers = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="claude-api")
        data_version.watch(self.engine)

    @classmethod
    def start(cls, settings: Settings, *, migrate: bool = True) -> Services:
        """Open the database, run pending migrations and start the tracker."""
        engine = make_engine(settings.database_url)
        if migrate:
            upgrade(engine)
        return cls(settings=settings, engine=engine, tracker=build_tracker(engine))

    @contextmanager
    def session(self, *, deadline: float | None = None) -> Iterator[Session]:
        """A read session for one request; its statements stop at `deadline` (from
        `query_deadline`) with QueryTimeout."""
        with deadline_session(self.engine, deadline) as session:
            yield session

    async def run(self, function: Callable[[], T], /) -> T:
        """`function()` in one of the services' worker threads, in a copy of the caller's
        context variables: blocking database work of REST reads and ingest, off the event loop.

        The event loop's executor hands work over more cheaply than `run_in_threadpool` (no
        capacity limiter or cancel scope per call): about a fifth more REST reads a second.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, contextvars.copy_context().run, function)

    async def latest_version(self) -> int | None:
        """The data version now (None before the first write): on a SQLite file at once, on the
        event loop (a check that would wait falls back to the thread); otherwise read in a
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

    def query_deadline(self) -> float:
        """The deadline of a request's reads that start now (a `time.monotonic()` value)."""
        return time.monotonic() + self.settings.query_timeout_seconds

    def close(self) -> None:
        """Wait for the work under way, then stop the tracker and close the engine."""
        self._workers.shutdown(wait=True)
        self.tracker.close()
        data_version.unwatch(self.engine)
        self.engine.dispose()
