"""Tasks: which agents and skills a task ran, and which tasks ran an agent or skill."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import NotFound
from claude_api.models.filters import UsageFilter
from claude_api.models.queries._raw_rows import usage_fields, usage_rows
from claude_api.models.queries.purged import count_purged_invocations
from claude_api.models.queries.task_list import list_tasks
from claude_api.models.results import TaskInvocation

__all__ = ["list_task_usage", "list_tasks", "task_projects"]


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


def task_projects(session: Session, *, task_id: str) -> set[str | None]:
    """The projects of the task's recorded invocations (None for those recorded without one);
    empty when the task has none. Whoever runs a task under a given id asks this first."""
    rows = usage_rows(UsageFilter(task_id=task_id))
    return set(session.execute(sa.select(rows.c.project_id).distinct()).scalars())
