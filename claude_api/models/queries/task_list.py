"""The list of tasks, the most recently active first, read through the indexes: a page costs
about the rows of the tasks it walks past, not every row of the range.

A task's place is the latest start of any of its invocations (its "last seen"), whatever the
filter chose it by. Either the invocations of the project are read newest first (the timestamp
index of each table, merged) and each task met is looked up, a chunk at a time, until the page
is full: a task first met at instant t was last seen at t, and every task not met yet was last
seen at or before it. Or, when that walk would read more rows than there are matching the
filter (the rollups count both), the matching tasks are found from their own rows, through the
name's index when the filter names one, and ordered.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter
from claude_api.events import Kind, Status
from claude_api.models.filters import UsageFilter, check_limit
from claude_api.models.queries._aggregates import stats_columns, totals_fields
from claude_api.models.queries._numbers import as_int
from claude_api.models.queries._pagination import decode_cursor, make_page
from claude_api.models.queries._partial_sums import plan, raw_parts
from claude_api.models.queries._range_split import raw_pieces
from claude_api.models.queries._raw_rows import not_indexed, usage_rows
from claude_api.models.queries._statement_shapes import Shape, bind, statements
from claude_api.models.queries.breakdowns import _totals_read
from claude_api.models.results import Page, TaskSummary
from claude_api.models.tables import USAGE_TABLES
from claude_api.models.types import UTCDateTime

LISTING = "tasks"
FIRST_CHUNK = 64  # tasks looked up at once while walking the newest invocations; it doubles
STREAM_ROWS = 256  # rows fetched at once from each table's walk

Place = tuple[datetime, str]  # (last seen, task id): a task's place in the list


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
    cursor = None
    if after is not None:
        seen, task_id = decode_cursor(LISTING, after, 2)
        cursor = (_cursor_time(seen), task_id)
    if _walk_is_longer(session, filter, limit + 1):
        places = _places(session, _matching_tasks(session, filter), filter.project_id)
        ordered = sorted(place for place in places if _after(place, cursor))
        chosen = [_unsorted(place) for place in ordered[: limit + 1]]
    else:
        chosen = _walk(session, filter, cursor, limit + 1)
    task_ids = [task_id for _, task_id in chosen]
    items = _summaries(session, task_ids, filter.project_id)
    return make_page(
        items,
        limit=limit,
        listing=LISTING,
        key=lambda task: (task.last_seen_at.isoformat(), task.task_id),
    )


def _after(place: tuple[Any, str], cursor: Place | None) -> bool:
    """Whether a (negated-time or time, task id) place comes after the cursor's task."""
    if cursor is None:
        return True
    seen, task_id = _unsorted(place)
    return seen < cursor[0] or (seen == cursor[0] and task_id > cursor[1])


class _Newest:
    """A task's place ordered most recent first, then by task id (code point order)."""

    __slots__ = ("seen", "task_id")

    def __init__(self, seen: datetime, task_id: str) -> None:
        self.seen, self.task_id = seen, task_id

    def __lt__(self, other: _Newest) -> bool:
        return (self.seen, other.task_id) > (other.seen, self.task_id)


def _unsorted(place: Any) -> Place:
    return (place.seen, place.task_id) if isinstance(place, _Newest) else place


def _walk_is_longer(session: Session, filter: UsageFilter, wanted: int) -> bool:
    """Whether walking the newest invocations to find `wanted` matching tasks would read more
    rows than reading the matching tasks directly, as the rollups' counts tell: the walk reads
    about `wanted` times the range's invocations per matching one; the direct read, the
    name's invocations of all time (through its index), or the range's without a name."""
    if filter.task_id is not None or filter.status is Status.RUNNING:
        return True  # one task's rows, or the running ones through their partial index
    if filter.name is None and filter.status is None and filter.model is None:
        return False  # every task of the range or project matches: the walk stops soonest
    matching = _count(session, filter)
    if matching == 0:
        return True
    scope = UsageFilter(project_id=filter.project_id, since=filter.since, until=filter.until)
    in_range = _count(session, scope)
    walk = wanted * in_range / matching
    if filter.name is not None:
        return _count(session, UsageFilter(kind=filter.kind, name=filter.name)) < walk
    return in_range < walk


def _count(session: Session, filter: UsageFilter) -> int:
    """How many invocations match `filter`, from the rollups."""
    shape, values = bind(filter, plan(filter))
    row = session.execute(_totals_read(shape), values).one_or_none()
    return 0 if row is None else as_int(row.invocations)


def _matching_tasks(session: Session, filter: UsageFilter) -> list[str]:
    """The tasks with an invocation matching `filter`."""
    shape, values = _bound(filter)
    return list(session.execute(_matching_read(shape, False), values).scalars())


def _bound(filter: UsageFilter) -> tuple[Shape, dict[str, Any]]:
    """The shape of a question on the raw rows of `filter`'s range, and its values."""
    return bind(filter, raw_pieces(filter.since, filter.until))


def _scope(project_id: str | None) -> tuple[Shape, dict[str, Any]]:
    """The shape of a question on every row of a project (or of all), and its values."""
    return bind(UsageFilter(project_id=project_id), raw_pieces(None, None))


@statements
def _matching_read(shape: Shape, listed: bool) -> sa.Select[Any]:
    """The distinct tasks with a row of the shape's filter (of the `task_ids` when `listed`)."""
    filter, _ = shape.bound()
    running = filter.status is Status.RUNNING
    rows = usage_rows(filter, running_only=running and not listed, task_ids=listed)
    return sa.select(rows.c.task_id).distinct()


@statements
def _places_read(shape: Shape) -> sa.Select[Any]:
    """When each of the `task_ids` was last seen, among the rows of the shape's project."""
    filter, _ = shape.bound()
    rows = usage_rows(filter, task_ids=True)
    return sa.select(rows.c.task_id, sa.func.max(rows.c.timestamp)).group_by(rows.c.task_id)


@statements
def _summaries_read(shape: Shape) -> sa.Select[Any]:
    """The sums of each of the `task_ids` over the rows of the shape's project."""
    filter, _ = shape.bound()
    rows = usage_rows(filter, task_ids=True)
    parts = raw_parts(rows, rows.c.task_id).subquery("parts")
    return sa.select(parts.c.task_id, *stats_columns()).group_by(parts.c.task_id)


@statements
def _shapes_read(shape: Shape) -> sa.Select[Any]:
    """The names, top-level statuses and last finish of each of the `task_ids`."""
    filter, _ = shape.bound()
    rows = usage_rows(filter, task_ids=True)
    top_level = rows.c.parent_id.is_(None)
    return sa.select(
        rows.c.task_id,
        rows.c.kind,
        rows.c.name,
        top_level.label("top_level"),
        rows.c.status,
        sa.func.max(rows.c.finished_at).label("ended_at"),
    ).group_by(rows.c.task_id, rows.c.kind, rows.c.name, top_level, rows.c.status)


@statements
def _walk_read(kind: Kind, project: bool, since: bool, upper: bool) -> sa.Select[Any]:
    """(start, task id) of one table's rows, the newest first, from `since` (up to `upper`),
    of the project when `project`: the timestamp index walked backwards."""
    table = USAGE_TABLES[kind].__table__
    conditions = []
    if project:
        # Walk the timestamp index, testing the project on each row: SQLite, without
        # statistics, would rather read the whole project through its index and sort it.
        conditions.append(not_indexed(table.c.project_id) == sa.bindparam("project_id"))
    if since:
        conditions.append(table.c.timestamp >= sa.bindparam("since", type_=UTCDateTime()))
    if upper:
        conditions.append(table.c.timestamp <= sa.bindparam("upper", type_=UTCDateTime()))
    return (
        sa.select(table.c.timestamp, table.c.task_id)
        .where(*conditions)
        .order_by(table.c.timestamp.desc())
    )


def _places(session: Session, task_ids: list[str], project_id: str | None) -> list[_Newest]:
    """When each task was last seen (within the project), as places to sort."""
    if not task_ids:
        return []
    shape, values = _scope(project_id)
    found = session.execute(_places_read(shape), values | {"task_ids": task_ids})
    return [_Newest(seen, task_id) for task_id, seen in found]


def _walk(session: Session, filter: UsageFilter, cursor: Place | None, wanted: int) -> list[Place]:
    """The first `wanted` places of tasks matching `filter` after the cursor, found by walking
    the project's invocations newest first from the cursor's instant down to `filter.since`
    (a matching task was last seen no earlier than its matching invocation)."""
    found: list[_Newest] = []
    met: set[str] = set()
    pending: list[str] = []
    chunk = FIRST_CHUNK

    def settle() -> None:
        nonlocal pending, chunk
        found.extend(_matching(session, filter, pending, cursor))
        found.sort()
        del found[wanted:]
        pending, chunk = [], chunk * 2

    with closing(_newest_first(session, filter, cursor)) as walk:
        for seen, task_id in walk:
            if len(found) == wanted and seen < found[-1].seen:
                break  # every task not met yet was last seen before the page's last one
            if task_id in met:
                continue
            met.add(task_id)
            pending.append(task_id)
            if len(pending) >= chunk:
                settle()
    if pending:
        settle()
    return [_unsorted(place) for place in found]


def _matching(
    session: Session, filter: UsageFilter, task_ids: list[str], cursor: Place | None
) -> Iterator[_Newest]:
    """The places of those of `task_ids` with an invocation matching `filter`, after the
    cursor. A task first met below the cursor's instant may have been seen after it: its
    place is read, not taken from the walk."""
    shape, values = _bound(filter)
    chosen = session.execute(_matching_read(shape, True), values | {"task_ids": task_ids})
    matched = list(chosen.scalars())
    for place in _places(session, matched, filter.project_id):
        if _after(place, cursor):
            yield place


def _newest_first(
    session: Session, filter: UsageFilter, cursor: Place | None
) -> Iterator[tuple[datetime, str]]:
    """(start, task id) of the project's invocations from `filter.since` on (up to the
    cursor's instant), the newest first: each table's timestamp index, merged."""
    values: dict[str, Any] = {"project_id": filter.project_id, "since": filter.since}
    values["upper"] = cursor[0] if cursor is not None else None
    results = [
        session.execute(
            _walk_read(
                kind, filter.project_id is not None, filter.since is not None, cursor is not None
            ),
            {key: value for key, value in values.items() if value is not None},
            execution_options={"yield_per": STREAM_ROWS},
        )
        for kind in Kind
    ]
    try:
        walks = (map(tuple, result) for result in results)
        yield from heapq.merge(*walks, key=lambda row: row[0], reverse=True)
    finally:
        for result in results:
            result.close()  # a walk stopped early leaves no cursor open


def _summaries(session: Session, task_ids: list[str], project_id: str | None) -> list[TaskSummary]:
    """The summaries of the tasks, most recently seen first."""
    if not task_ids:
        return []
    shape, values = _scope(project_id)
    found = session.execute(_summaries_read(shape), values | {"task_ids": task_ids}).all()
    shapes = _task_shapes(session, task_ids, project_id)
    items = [_task_summary(row, shapes.get(row.task_id)) for row in found]
    return sorted(items, key=lambda task: _Newest(task.last_seen_at, task.task_id))


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
    scope, values = _scope(project_id)
    shapes: dict[str, _Shape] = {}
    for row in session.execute(_shapes_read(scope), values | {"task_ids": task_ids}):
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
