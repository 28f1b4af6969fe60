"""Every invocation, agents and skills alike, in start order: one page at a time (the API's
listing), all of them as a stream (what an export writes, in constant memory), and their count.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter
from claude_api.events import Kind
from claude_api.exports import COLUMNS
from claude_api.models.filters import UsageFilter, check_limit, to_enum
from claude_api.models.queries._pagination import decode_cursor, make_page
from claude_api.models.queries._source import usage_fields, usage_rows
from claude_api.models.results import InvocationRecord, Page

_INVOCATIONS_LISTING = "invocations"
STREAM_BATCH = 5000  # rows read per statement by iter_invocations: memory stays this flat


@dataclass(frozen=True)
class _Key:
    """Where a page resumes: after the row with this (timestamp, kind, event id)."""

    timestamp: datetime
    kind: Kind
    event_id: UUID


def list_invocations(
    session: Session,
    *,
    filter: UsageFilter = UsageFilter(),
    limit: int = 50,
    after: str | None = None,
) -> Page[InvocationRecord]:
    """The invocations matching `filter` (both kinds when `filter.kind` is None), in start
    order, ties broken by kind (agent before skill), then event id: the order of
    `list_task_usage`. One page of `limit` at a time; pass a page's `next_cursor` as `after`.

    A page costs the same however deep it is: the cursor holds the last row's sort key and each
    table is read from it along its timestamp index. Rows recorded meanwhile with a later start
    show up on later pages. Raises InvalidFilter for a bad limit or cursor.
    """
    check_limit(limit)
    key = _decode(after) if after is not None else None
    statement = _statement(filter, key, limit + 1)
    if statement is None:
        return Page(items=(), next_cursor=None)
    items = [_record(row) for row in session.execute(statement)]
    return make_page(
        items,
        limit=limit,
        listing=_INVOCATIONS_LISTING,
        key=lambda item: (item.timestamp.isoformat(), item.kind.value, str(item.event_id)),
    )


def iter_invocations(
    session: Session, *, filter: UsageFilter = UsageFilter(), batch: int = STREAM_BATCH
) -> Iterator[InvocationRecord]:
    """Every invocation matching `filter`, in the order of `list_invocations`, read `batch` rows
    at a time along the same keyset (each statement resumes after the last row of the one
    before), so memory stays flat however many rows there are and no statement holds a cursor
    open for long. Rows recorded meanwhile with a later start than the last row read are
    included."""
    for rows in _batches(session, filter, batch):
        yield from map(_record, rows)


def iter_invocation_rows(
    session: Session, *, filter: UsageFilter = UsageFilter(), batch: int = STREAM_BATCH
) -> Iterator[list[Any]]:
    """The invocations of `iter_invocations` as the export writes them: a list of plain values
    per invocation, in the order of `claude_api.exports.COLUMNS`, enums as their wire values,
    ids as text and times in ISO 8601 with their offset. Building no record per row, it is
    several times faster, which an export of millions of rows feels."""
    for rows in _batches(session, filter, batch):
        for row in rows:
            values = list(_export_values(row))
            for index in _ID_INDEXES:
                if values[index] is not None:
                    values[index] = str(values[index])
            for index in _TIME_INDEXES:
                if values[index] is not None:
                    values[index] = values[index].isoformat()
            yield values


_export_values = operator.attrgetter(*COLUMNS)
_ID_INDEXES = (COLUMNS.index("event_id"), COLUMNS.index("parent_id"))
_TIME_INDEXES = (COLUMNS.index("timestamp"), COLUMNS.index("finished_at"))


def _batches(session: Session, filter: UsageFilter, batch: int) -> Iterator[Sequence[Any]]:
    key = None
    while True:
        statement = _statement(filter, key, batch)
        if statement is None:
            return
        rows = session.execute(statement).all()
        yield rows
        if len(rows) < batch:
            return
        last = rows[-1]
        key = _Key(last.timestamp, Kind(last.kind), last.event_id)


def _statement(filter: UsageFilter, key: _Key | None, rows: int) -> sa.Select[Any] | None:
    """The next `rows` invocations after `key` in listing order; None when none can follow."""
    kinds = [filter.kind] if filter.kind is not None else list(Kind)
    found = (_branch(filter, kind, key, rows) for kind in kinds)
    branches = [branch for branch in found if branch is not None]
    if not branches:
        return None
    if len(branches) == 1:
        return branches[0]
    # Each branch is already ordered and cut to `rows`, so merging them sorts at most twice
    # that instead of both tables' remainders.
    merged = sa.union_all(*(sa.select(branch.subquery()) for branch in branches))
    page = merged.subquery("page")
    return sa.select(page).order_by(page.c.timestamp, page.c.kind, page.c.event_id).limit(rows)


def count_invocations(session: Session, *, filter: UsageFilter = UsageFilter()) -> int:
    """How many invocations match `filter`: the rows `list_invocations` pages through."""
    rows = usage_rows(filter)
    return int(session.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one())


def _branch(filter: UsageFilter, kind: Kind, key: _Key | None, rows: int) -> sa.Select[Any] | None:
    """One table's next `rows` rows after `key`, or None when none can follow it."""
    scope = filter.replace(kind=kind)
    if key is not None:
        if scope.until is not None and key.timestamp >= scope.until:
            return None
        if scope.since is None or key.timestamp > scope.since:
            # The cursor's start as the lower bound of the range, where the index serves it.
            scope = scope.replace(since=key.timestamp)
    table = usage_rows(scope)
    statement = sa.select(table)
    if key is not None and kind.value <= key.kind.value:
        # Rows starting at the cursor's instant follow it only if they sort after it by kind,
        # then event id; a later kind follows at any instant from the cursor's on.
        later = table.c.timestamp > key.timestamp
        if kind is key.kind:
            same_instant = sa.and_(
                table.c.timestamp == key.timestamp, table.c.event_id > key.event_id
            )
            later = sa.or_(later, same_instant)
        statement = statement.where(later)
    return statement.order_by(table.c.timestamp, table.c.event_id).limit(rows)


def _decode(cursor: str) -> _Key:
    moment, kind, event_id = decode_cursor(_INVOCATIONS_LISTING, cursor, 3)
    try:
        timestamp = datetime.fromisoformat(moment)
        parsed_id = UUID(event_id)
    except ValueError:
        raise InvalidFilter("after", "is not a cursor of this listing") from None
    if timestamp.utcoffset() is None:
        raise InvalidFilter("after", "is not a cursor of this listing")
    return _Key(timestamp, to_enum(Kind, kind, field="after"), parsed_id)


def _record(row: Any) -> InvocationRecord:
    return InvocationRecord(**usage_fields(row), task_id=row.task_id)
