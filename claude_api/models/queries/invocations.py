"""Every invocation, agents and skills alike, one page at a time in start order: the listing
an export pages through in constant memory, and its count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter
from claude_api.models.events import Kind
from claude_api.models.filters import UsageFilter, check_limit, to_enum
from claude_api.models.queries._pagination import decode_cursor, make_page
from claude_api.models.queries._source import usage_fields, usage_rows
from claude_api.models.results import InvocationRecord, Page

_INVOCATIONS_LISTING = "invocations"


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
    kinds = [filter.kind] if filter.kind is not None else list(Kind)
    found = (_branch(filter, kind, key, limit) for kind in kinds)
    branches = [branch for branch in found if branch is not None]
    if not branches:
        return Page(items=(), next_cursor=None)
    if len(branches) == 1:
        statement = branches[0]
    else:
        # Each branch is already ordered and cut to limit + 1 rows, so merging them sorts at most
        # 2 * (limit + 1) rows instead of both tables' remainders.
        merged = sa.union_all(*(sa.select(branch.subquery()) for branch in branches))
        page = merged.subquery("page")
        statement = (
            sa.select(page)
            .order_by(page.c.timestamp, page.c.kind, page.c.event_id)
            .limit(limit + 1)
        )
    items = [_record(row) for row in session.execute(statement)]
    return make_page(
        items,
        limit=limit,
        listing=_INVOCATIONS_LISTING,
        key=lambda item: (item.timestamp.isoformat(), item.kind.value, str(item.event_id)),
    )


def count_invocations(session: Session, *, filter: UsageFilter = UsageFilter()) -> int:
    """How many invocations match `filter`: the rows `list_invocations` pages through."""
    rows = usage_rows(filter)
    return int(session.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one())


def _branch(filter: UsageFilter, kind: Kind, key: _Key | None, limit: int) -> sa.Select[Any] | None:
    """One table's next `limit + 1` rows after `key`, or None when none can follow it."""
    scope = filter.replace(kind=kind)
    if key is not None:
        if scope.until is not None and key.timestamp >= scope.until:
            return None
        if scope.since is None or key.timestamp > scope.since:
            # The cursor's start as the lower bound of the range, where the index serves it.
            scope = scope.replace(since=key.timestamp)
    rows = usage_rows(scope)
    statement = sa.select(rows)
    if key is not None and kind.value <= key.kind.value:
        # Rows starting at the cursor's instant follow it only if they sort after it by kind,
        # then event id; a later kind follows at any instant from the cursor's on.
        later = rows.c.timestamp > key.timestamp
        if kind is key.kind:
            same_instant = sa.and_(
                rows.c.timestamp == key.timestamp, rows.c.event_id > key.event_id
            )
            later = sa.or_(later, same_instant)
        statement = statement.where(later)
    return statement.order_by(rows.c.timestamp, rows.c.event_id).limit(limit + 1)


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
