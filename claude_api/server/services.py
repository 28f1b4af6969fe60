"""What the server's handlers share: settings, the database engine, the tracker and the API key
verifier."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.models.db import make_engine, upgrade
from claude_api.models.timeouts import deadline_session
from claude_api.server.auth import KeyVerifier
from claude_api.tracking import Tracker, build_tracker


@dataclass
class Services:
    """Built once per app; reached from a request as `request.app.state.services`."""

    settings: Settings
    engine: Engine
    tracker: Tracker
    key_verifier: KeyVerifier = field(init=False)

    def __post_init__(self) -> None:
        self.key_verifier = KeyVerifier(self.engine, ttl=self.settings.auth_cache_seconds)

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

    def query_deadline(self) -> float:
        """The deadline of a request's reads that start now (a `time.monotonic()` value)."""
        return time.monotonic() + self.settings.query_timeout_seconds

    def close(self) -> None:
        self.tracker.close()
        self.engine.dispose()
