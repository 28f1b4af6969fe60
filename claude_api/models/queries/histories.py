"""Histories of several agents or skills at once: the buckets of `usage_by_period` for each
name, from one read of the rollups grouped by name and bucket (one read for every trend line
of a leaderboard, where a history per name would read the same rollup buckets once each)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter
from claude_api.events import Kind
from claude_api.models.filters import MAX_TOP, Period, UsageFilter, check_text, to_enum
from claude_api.models.local_days import day_starts
from claude_api.models.queries._aggregates import PART, totals_columns, totals_series
from claude_api.models.queries._answer_cache import cached
from claude_api.models.queries._calendar import calendar_buckets
from claude_api.models.queries._partial_sums import plan, usage_parts
from claude_api.models.queries._range_split import split_ranges
from claude_api.models.queries._raw_rows import not_indexed
from claude_api.models.queries._statement_shapes import Shape, bind, statements
from claude_api.models.queries.history import (
    _bucket_index,
    _history_range,
    assemble_history,
    settled_part,
)
from claude_api.models.results import History
from claude_api.models.types import UTCDateTime

_MEASURES = [column for key, column in PART.items() if key not in ("kind", "model", "project")]
_WHOLE = -1  # the `bucket` of the rows that hold each name's totals over the whole range


@cached(reads_clock=lambda kw: kw.get("now") is None and kw["filter"].until is None, settles=True)
def usage_by_period_per_name(
    session: Session,
    *,
    filter: UsageFilter,
    period: Period,
    named: Sequence[str],
    now: datetime | None = None,
) -> tuple[History, ...]:
    """`usage_by_period` of each of the names `named` (agents or skills of `filter.kind`, which
    must be given), in the order given, a name asked twice answered once; a name with no
    invocation has empty buckets, not an error. The filter's own name must be empty.

    Raises InvalidFilter for no kind, a name in the filter, no name or more than MAX_TOP, or a
    range of more than MAX_BUCKETS buckets.
    """
    period = to_enum(Period, period, field="period")
    if filter.kind is None:
        raise InvalidFilter("kind", "histories of several names need their kind")
    if filter.name is not None:
        raise InvalidFilter("name", "give the names in named, not in the filter")
    chosen = list(dict.fromkeys(named))
    if not 1 <= len(chosen) <= MAX_TOP:
        raise InvalidFilter("named", f"must hold from 1 to {MAX_TOP} names, got {len(chosen)}")
    for name in chosen:
        check_text("named", name)
    since, until = _history_range(filter, period, now)
    buckets = calendar_buckets(since, until, period, filter.zone)
    ranged = filter.replace(since=since, until=until)

    found: dict[str, dict[int, Any]] | None = None

    def read_series(count: int) -> tuple[tuple[str, Any], ...]:
        # Read every bucket in one statement, as afresh, and keep the settled ones' columns.
        nonlocal found
        found = _rows(session, ranged, buckets, chosen)
        return tuple(
            (name, totals_series([rows.get(number) for number in range(count)]))
            for name, rows in found.items()
        )

    first, kept = settled_part(
        session, ("histories", period, tuple(chosen)), ranged, buckets, read_series
    )
    if found is None:  # the settled buckets were kept: the others only
        recent = ranged.replace(since=buckets[first].start_at)
        found = _rows(session, recent, buckets, chosen, first=first, whole=ranged)
    leading = dict(kept)
    return tuple(
        assemble_history(
            kind=Kind(filter.kind),
            name=name,
            period=period,
            tz=filter.tz,
            since=since,
            until=until,
            buckets=buckets,
            rows=found[name],
            totals=found[name].get(_WHOLE),
            leading=leading.get(name),
        )
        for name in chosen
    )


def _rows(
    session: Session,
    filter: UsageFilter,
    buckets: Sequence[Any],
    names: list[str],
    *,
    first: int = 0,
    whole: UsageFilter | None = None,
) -> dict[str, dict[int, Any]]:
    """The rows of `_per_name_read` per name and bucket number: each name's totals in each of
    `buckets[first:]` over `filter`'s range, and (bucket _WHOLE) over `whole`'s range,
    `filter`'s by default."""
    read = buckets[first:]
    intervals = ((bucket.start_at, bucket.end_at) for bucket in read)
    shape, values = bind(filter, split_ranges(intervals, day_starts(session)))
    values["names"] = names
    values |= {f"edge_{number}": bucket.start_at for number, bucket in enumerate(read[1:])}
    whole = whole or filter
    total, whole_values = bind(whole, plan(whole), prefix="whole_")
    found: dict[str, dict[int, Any]] = {name: {} for name in names}
    statement = _per_name_read(shape, total, len(read) - 1, first)
    for row in session.execute(statement, values | whole_values):
        found[row.name][row.bucket] = row
    return found


@statements
def _per_name_read(shape: Shape, whole: Shape, edges: int, first: int) -> sa.CompoundSelect:
    """A row of totals per (name, bucket number from `first`) with data among the bind
    parameter `names`, and per name a row of its totals over the `whole` range (bucket
    _WHOLE)."""
    # Not through an index: SQLite pushes the names down into the raw rows' branches, where
    # the name's index would read every row of the names instead of the few running ones.
    names = sa.bindparam("names", expanding=True)
    named = not_indexed(PART["name"]).in_(names)
    filter, pieces = shape.bound()
    parts = usage_parts(filter, pieces, by=("name", "at"))
    starts = [sa.bindparam(f"edge_{number}", type_=UTCDateTime()) for number in range(edges)]
    # Bucket in a subquery and group by its column: PostgreSQL would not match a GROUP BY CASE
    # to the same CASE in the select list, their bound parameters being distinct.
    indexed = (
        sa.select(*_MEASURES, _bucket_index(PART["at"], starts, first).label("bucket"))
        .select_from(parts)
        .where(named)
        .subquery("indexed")
    )
    per_bucket = (
        sa.select(indexed.c.name, indexed.c.bucket, *totals_columns())
        .select_from(indexed)
        .group_by(indexed.c.name, indexed.c.bucket)
    )
    filter, pieces = whole.bound()
    totals = usage_parts(filter, pieces, by=("name",))
    per_name = (
        sa.select(
            PART["name"], sa.literal_column(str(_WHOLE), sa.Integer).label("bucket"),
            *totals_columns(),
        )
        .select_from(totals)
        .where(named)
        .group_by(PART["name"])
    )  # fmt: skip
    return sa.union_all(per_bucket, per_name)
