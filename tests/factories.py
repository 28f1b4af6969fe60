"""Factories that build usage events and store them through the real write path."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import Status, UsageEvent
from claude_api.models.db import write_engine
from claude_api.models.write import store_events

BASE_TIME = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def make_event(**overrides: Any) -> UsageEvent:
    """A finished agent invocation; any field can be overridden."""
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "kind": "agent",
        "name": "code-reviewer",
        "task_id": "task-1",
        "timestamp": BASE_TIME,
        "status": Status.COMPLETED,
        "duration_seconds": 12.5,
        "cost_usd": 0.25,
        "input_tokens": 1000,
        "output_tokens": 200,
        "model": "claude-sonnet-4-5",
        "source": "test",
    }
    fields.update(overrides)
    if fields["status"] == Status.RUNNING:
        for key in ("duration_seconds", "cost_usd", "input_tokens", "output_tokens"):
            if key not in overrides:
                fields[key] = None
    return UsageEvent.model_validate(fields)


def make_events(
    count: int,
    *,
    start: datetime = BASE_TIME,
    step: timedelta = timedelta(minutes=1),
    **overrides: Any,
) -> list[UsageEvent]:
    """`count` finished events one `step` apart."""
    return [make_event(timestamp=start + i * step, **overrides) for i in range(count)]


def add_events(engine: Engine, *events: UsageEvent) -> None:
    """Store events through the write path, in one transaction."""
    with Session(write_engine(engine)) as session:
        store_events(session, events)
        session.commit()


def write_demo_from_another_process(database_url: str) -> None:
    """Store 5 demo events into `database_url` from a separate `claude-api demo` process."""
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "claude_api.client", "demo", "--events", "5", "--seed", "3"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
