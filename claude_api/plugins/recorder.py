"""The built-in recorder plugin: writes usage events into the usage tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import UsageEvent
from claude_api.models.db import write_engine
from claude_api.models.write import store_events
from claude_api.plugins.hookspecs import hookimpl

RECORDER_NAME = "recorder"


class Recorder:
    """Stores each batch in one transaction: a batch is written whole or not at all."""

    def __init__(self, engine: Engine) -> None:
        self.engine = write_engine(engine)

    @hookimpl
    def usage_batch(self, events: Sequence[UsageEvent]) -> None:
        with Session(self.engine) as session:
            store_events(session, events)
            session.commit()
