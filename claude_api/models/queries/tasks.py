"""Tasks: which agents and skills a task ran, and which tasks ran an agent or skill."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter, NotFound
from claude_api.models.filters import UsageFilter, check_limit
from claude_api.models.queries._aggregates import stats_columns, totals_fields
from claude_api.models.queries._pagination import decode_cursor, make_page
from claude_api.models.queries._parts import raw_parts
from claude_api.models.queries._source import bytewise, usage_fields, usage_rows
from claude_api.models.queries.purged import count_purged_invocations
from claude_api.models.results import Page, TaskSummary, TaskUsage

_TASKS_LISTING = "tasks"


def list_task_usage(
    session: Session, *, task_id: str, project_id: str | None = None
) -> list[TaskUsage]:
    """Every invocation of the task, agents and skills alike, in start order (ties: agents
    before skills, then event id); `parent_id` links each to the invocation that ran it.
    With `project_id`, only that project's invocations of the task.

    Raises NotFound when the task has no recorded invocation (in that project); its message
    says so when invocations before some instant have been purged.
    """
    rows = usage_rows(UsageFilter(task_id=task_id, project_id=project_id))
    statement = sa.select(rows).order_by(rows.c.timestamp, rows.c.kind, rows.c.event_id)
    found = session.execute(statement).all()
    if not found:
        where = f" in project {project_id!r}" if project_id is not None else ""
        message = f"no invocation of task {task_id!r} has been recorded{where}"
        raise NotFound(message + _purge_note(session, project_id))
    return [_task_usage(row) for row in found]


def _purge_note(session: Session, project_id: str | None) -> str:
    """Why a task may be missing: its invocations were older than the raw rows kept; and how
    many invocations (of the project) the rollups count that the raw rows no longer hold."""
    purged = count_purged_invocations(session, filter=UsageFilter(project_id=project_id))
    if purged is None:
        return ""
    moment = purged.before.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"; invocations that started before {moment} have been purged from the raw rows "
        f"(the rollups still count {purged.invocations:,} of them)"
    )


def _task_usage(row: Any) -> TaskUsage:
    return TaskUsage(**usage_fields(row))


def list_tasks(
    session: Session,
    *,
    filter: UsageFilter = UsageFilter(),
    limit: int = 50,
    after: str | None = None,
) -> Page[TaskSummary]:
    """The tasks with an invocation matching `filter` (e.g. the tasks that used an agent), the
    most recently active first (by the latest start among those invocations, then task id).

    Counts, cost and first/last seen are over the task's matching invocations only. Pass a
    page's `next_cursor` as `after` for the next page; InvalidFilter for a bad limit or cursor.
    """
    check_limit(limit)
    rows = usage_rows(filter)
    parts = raw_parts(rows, rows.c.task_id).subquery("parts")
    last_seen = sa.func.max(parts.c.last_seen)
    statement = (
        sa.select(parts.c.task_id, *stats_columns())
        .group_by(parts.c.task_id)
        .order_by(last_seen.desc(), bytewise(parts.c.task_id))
        .limit(limit + 1)
    )
    if after is not None:
        seen, task_id = decode_cursor(_TASKS_LISTING, after, 2)
        before = _cursor_time(seen)
        statement = statement.having(
            sa.or_(
                last_seen < before,
                sa.and_(last_seen == before, bytewise(parts.c.task_id) > task_id),
            )
        )
    items = [_task_summary(row) for row in session.execute(statement)]
    return make_page(
        items,
        limit=limit,
        listing=_TASKS_LISTING,
        key=lambda task: (task.last_seen_at.isoformat(), task.task_id),
    )


_SUMMARY_FIELDS = tuple(
    field.name for field in dataclasses.fields(TaskSummary) if field.name not in ("task_id",)
)


def _task_summary(row: Any) -> TaskSummary:
    totals = totals_fields(row)
    return TaskSummary(
        task_id=row.task_id,
        **{name: totals[name] for name in _SUMMARY_FIELDS if name in totals},
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
    )


def _cursor_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise InvalidFilter("after", "is not a cursor of this listing")
    return moment


def task_projects(session: Session, *, task_id: str) -> set[str | None]:
    """The projects of the task's recorded invocations (None for those recorded without one);
    empty when the task has none. Whoever runs a task under a given id asks this first."""
    rows = usage_rows(UsageFilter(task_id=task_id))
    return set(session.execute(sa.select(rows.c.project_id).distinct()).scalars())
