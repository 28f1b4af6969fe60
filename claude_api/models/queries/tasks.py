"""Tasks: which agents and skills a task ran, and which tasks ran an agent or skill."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter, NotFound
from claude_api.models.events import Kind, Status
from claude_api.models.filters import UsageFilter, check_limit
from claude_api.models.queries._aggregates import stats_columns, totals_fields
from claude_api.models.queries._pagination import decode_cursor, make_page
from claude_api.models.queries._parts import raw_parts
from claude_api.models.queries._source import bytewise, usage_fields, usage_rows
from claude_api.models.queries.purged import count_purged_invocations
from claude_api.models.results import Page, TaskInvocation, TaskSummary

_TASKS_LISTING = "tasks"


def list_task_usage(
    session: Session, *, task_id: str, project_id: str | None = None
) -> list[TaskInvocation]:
    """Every invocation of the task, agents and skills alike, in start order (ties: agents
    before skills, then event id); `parent_id` links each to the invocation that ran it, and
    each carries the total cost of its subtree (itself and everything it ran, transitively).
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
    return _with_subtree_costs([usage_fields(row) for row in found])


def _with_subtree_costs(invocations: list[dict[str, Any]]) -> list[TaskInvocation]:
    """Each invocation with the sum of the costs reported in its subtree (None when none
    reports one) and how many invocations of the subtree report no cost. An invocation whose
    parent is not among them is a root; a loop in the parent links ends where it closes."""
    by_id = {fields["event_id"]: fields for fields in invocations}
    cost: dict[Any, float | None] = dict.fromkeys(by_id)
    unpriced: dict[Any, int] = dict.fromkeys(by_id, 0)
    for fields in invocations:
        own = fields["cost_usd"]
        # Add the invocation's own cost to itself and to each of its ancestors, once each.
        seen: set[Any] = set()
        event_id = fields["event_id"]
        while event_id in by_id and event_id not in seen:
            seen.add(event_id)
            if own is None:
                unpriced[event_id] += 1
            else:
                total = cost[event_id]
                cost[event_id] = own if total is None else total + own
            event_id = by_id[event_id]["parent_id"]
    return [
        TaskInvocation(
            **fields,
            total_cost_usd=cost[fields["event_id"]],
            unpriced_invocations=unpriced[fields["event_id"]],
        )
        for fields in invocations
    ]


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


def list_tasks(
    session: Session,
    *,
    filter: UsageFilter = UsageFilter(),
    limit: int = 50,
    after: str | None = None,
) -> Page[TaskSummary]:
    """The tasks with an invocation matching `filter` (e.g. the tasks that used an agent), the
    most recently active first (by the latest start of any of their invocations, then task id).

    The filter selects the tasks; each summary covers the whole task: every invocation of it
    (within the filter's project, when it names one), whatever agent, time or status, with the
    agents and skills it used. Pass a page's `next_cursor` as `after` for the next page;
    InvalidFilter for a bad limit or cursor.
    """
    check_limit(limit)
    chosen = usage_rows(filter)
    rows = usage_rows(UsageFilter(project_id=filter.project_id))
    whole = (
        sa.select(rows)
        .where(rows.c.task_id.in_(sa.select(chosen.c.task_id).distinct()))
        .subquery("whole")
    )
    parts = raw_parts(whole, whole.c.task_id).subquery("parts")
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
    found = session.execute(statement).all()
    shapes = _task_shapes(session, [row.task_id for row in found[:limit]], filter.project_id)
    items = [_task_summary(row, shapes.get(row.task_id)) for row in found]
    return make_page(
        items,
        limit=limit,
        listing=_TASKS_LISTING,
        key=lambda task: (task.last_seen_at.isoformat(), task.task_id),
    )


@dataclasses.dataclass
class _Shape:
    """What a task's summary needs beyond sums: names used, how its top-level invocations
    ended, and when its last invocation finished."""

    agents: set[str] = dataclasses.field(default_factory=set)
    skills: set[str] = dataclasses.field(default_factory=set)
    top_level_failed: bool = False
    has_top_level: bool = False
    any_failed: bool = False
    ended_at: datetime | None = None


def _task_shapes(
    session: Session, task_ids: list[str], project_id: str | None
) -> dict[str, _Shape]:
    if not task_ids:
        return {}
    rows = usage_rows(UsageFilter(project_id=project_id))
    top_level = rows.c.parent_id.is_(None)
    statement = (
        sa.select(
            rows.c.task_id,
            rows.c.kind,
            rows.c.name,
            top_level.label("top_level"),
            rows.c.status,
            sa.func.max(rows.c.finished_at).label("ended_at"),
        )
        .where(rows.c.task_id.in_(task_ids))
        .group_by(rows.c.task_id, rows.c.kind, rows.c.name, top_level, rows.c.status)
    )
    shapes: dict[str, _Shape] = {}
    for row in session.execute(statement):
        shape = shapes.setdefault(row.task_id, _Shape())
        (shape.agents if row.kind == Kind.AGENT.value else shape.skills).add(row.name)
        failed = row.status == Status.FAILED.value
        shape.any_failed |= failed
        if row.top_level:
            shape.has_top_level = True
            shape.top_level_failed |= failed
        if row.ended_at is not None and (shape.ended_at is None or row.ended_at > shape.ended_at):
            shape.ended_at = row.ended_at
    return shapes


_SUMMARY_FIELDS = tuple(
    field.name
    for field in dataclasses.fields(TaskSummary)
    if field.name not in ("task_id", "status", "duration_seconds", "ended_at", "agents", "skills")
)


def _task_summary(row: Any, shape: _Shape | None) -> TaskSummary:
    totals = totals_fields(row)
    shape = shape or _Shape()
    # A task runs while any invocation of it runs; it failed when an invocation that nothing
    # else ran (its main loop) failed, or, with no such invocation recorded, when any did.
    if totals["running"]:
        status = Status.RUNNING
    elif shape.top_level_failed or (not shape.has_top_level and shape.any_failed):
        status = Status.FAILED
    else:
        status = Status.COMPLETED
    ended_at = shape.ended_at if status is not Status.RUNNING else None
    duration = (ended_at - row.first_seen_at).total_seconds() if ended_at is not None else None
    return TaskSummary(
        task_id=row.task_id,
        **{name: totals[name] for name in _SUMMARY_FIELDS if name in totals},
        status=status,
        duration_seconds=duration,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        ended_at=ended_at,
        agents=tuple(sorted(shape.agents)),
        skills=tuple(sorted(shape.skills)),
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
