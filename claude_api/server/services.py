"""What the server's handlers share: settings, the database engine and the tracker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.models.db import make_engine, upgrade
from claude_api.tracking import Tracker, build_tracker


@dataclass
class Services:
    """Built once per app; reached from a request as `request.app.state.services`."""

    settings: Settings
    engine: Engine
    tracker: Tracker

    @classmethod
    def start(cls, settings: Settings, *, migrate: bool = True) -> Services:
        """Open the database, run pending migrations and start the tracker."""
        engine = make_engine(settings.database_url)
        if migrate:
            upgrade(engine)
        return cls(settings=settings, engine=engine, tracker=build_tracker(engine))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session for one request."""
        with Session(self.engine) as session:
            yield session

    def close(self) -> None:
        self.tracker.close()
        self.engine.dispose()
