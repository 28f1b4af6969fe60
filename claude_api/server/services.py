"""What the server's handlers share: settings, the database engine and its read gateway
(sessions, worker threads, the data version), the tracker and the API key verifier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.models.db import make_engine, upgrade
from claude_api.models.gateway import Gateway
from claude_api.models.local_days import keep_local_days
from claude_api.server.auth import KeyVerifier
from claude_api.tracking import Tracker, build_tracker

T = TypeVar("T")


@dataclass
class Services:
    """Built once per app; reached from a request as `request.app.state.services`."""

    settings: Settings
    engine: Engine
    tracker: Tracker
    key_verifier: KeyVerifier = field(init=False)
    gateway: Gateway = field(init=False)

    def __post_init__(self) -> None:
        self.key_verifier = KeyVerifier(self.engine, ttl=self.settings.auth_cache_seconds)
        self.gateway = Gateway(self.engine, timeout_seconds=self.settings.query_timeout_seconds)

    @classmethod
    def start(cls, settings: Settings, *, migrate: bool = True) -> Services:
        """Open the database, run pending migrations and start the tracker."""
        engine = make_engine(settings.database_url)
        if migrate:
            upgrade(engine)
            keep_local_days(engine, settings.time_zones)
        return cls(settings=settings, engine=engine, tracker=build_tracker(engine))

    # The gateway's own, for the handlers that are not analytics (budgets, alerts, ingest).

    @contextmanager
    def session(self, *, deadline: float | None = None) -> Iterator[Session]:
        """`Gateway.session`: a read session that stops at `deadline`."""
        with self.gateway.session(deadline=deadline) as session:
            yield session

    async def run(self, function: Callable[[], T], /) -> T:
        """`Gateway.run`: `function()` in a worker thread."""
        return await self.gateway.run(function)

    async def latest_version(self) -> int | None:
        """`Gateway.latest_version`: the data version now."""
        return await self.gateway.latest_version()

    def query_deadline(self) -> float:
        """The deadline of a request's reads that start now (a `time.monotonic()` value)."""
        deadline = self.gateway.deadline()
        assert deadline is not None
        return deadline

    def close(self) -> None:
        """Wait for the work under way, then stop the tracker and close the engine."""
        self.gateway.close()
        self.tracker.close()
        self.engine.dispose()
