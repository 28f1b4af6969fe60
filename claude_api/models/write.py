"""The one write path: usage events into `agent_usage` / `skill_usage`, idempotent on event id.

Rules, applied atomically by the database so that concurrent writers agree:
- a start inserts a `running` row, or does nothing when the id is already there;
- a finish completes the `running` row of its id, inserts the whole row when there is none,
  and does nothing when the row is already finished (a finish never counts twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from claude_api.models.events import Kind, Status, UsageEvent
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES

# Columns a finish may fill in on its running row; a finish's empty field keeps the start's value.
_FINISH_COLUMNS = (
    "status", "finished_at", "duration_seconds", "cost_usd", "cost_source", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_creation_tokens", "model", "error_message",
    "project_id", "parent_id",
)  # fmt: skip


def event_row(event: UsageEvent) -> dict[str, Any]:
    """The table row for an event (the name lands in `agent_name` or `skill_name`)."""
    row = event.model_dump(exclude={"kind", "name"})
    row[NAME_COLUMNS[event.kind]] = event.name
    return row


def collapse(events: Iterable[UsageEvent]) -> dict[UUID, UsageEvent]:
    """One event per id, by the rules above: the first finish wins, else the first start."""
    latest: dict[UUID, UsageEvent] = {}
    for event in events:
        seen = latest.get(event.event_id)
        if seen is None or (event.is_finish and not seen.is_finish):
            latest[event.event_id] = event
    return latest


def store_events(session: Session, events: Sequence[UsageEvent]) -> None:
    """Write `events` in the session's transaction; the caller commits.

    Within one batch the rules apply as if the events had been written one at a time in order.
    """
    collapsed = collapse(events).values()
    for kind in Kind:
        of_kind = [event for event in collapsed if event.kind is kind]
        starts = [event_row(e) for e in of_kind if e.status is Status.RUNNING]
        finishes = [event_row(e) for e in of_kind if e.status is not Status.RUNNING]
        table = USAGE_TABLES[kind].__table__
        if starts:
            session.execute(_insert(session, table).on_conflict_do_nothing(), starts)
        if finishes:
            session.execute(_finish_upsert(session, table), finishes)


def _insert(session: Session, table: sa.Table) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def _finish_upsert(session: Session, table: sa.Table) -> Any:
    statement = _insert(session, table)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.event_id],
        set_={name: sa.func.coalesce(excluded[name], table.c[name]) for name in _FINISH_COLUMNS},
        where=table.c.status == Status.RUNNING.value,
    )
