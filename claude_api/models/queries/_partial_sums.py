"""The partial aggregates every aggregate query sums: rollup rows for whole buckets, raw rows
for the rest.

`usage_parts` is a UNION ALL of rows of one shape: the rollup rows of the pieces of the range
that whole hours, days and months cover, the finished raw rows of its edges (each counting one
invocation), and the running raw rows of the whole range (rollups hold finished invocations
only). Summing its columns gives the same totals as aggregating the raw rows, at a cost that
depends on the number of buckets and names, not of invocations. `error_parts` is the same for
failure messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.buckets import ceil, floor
from claude_api.errors import NotFound
from claude_api.events import Kind, Status
from claude_api.models import data_version
from claude_api.models.filters import UsageFilter
from claude_api.models.queries._answer_cache import kept_while_settled
from claude_api.models.queries._range_split import (
    Interval,
    Pieces,
    raw_only,
    raw_pieces,
    split_counts,
    split_range,
)
from claude_api.models.queries._raw_rows import ROW, usage_rows, within
from claude_api.models.queries._statement_shapes import Filter, Shape, bind
from claude_api.models.retention import purged_before
from claude_api.models.rollup_tables import (
    ErrorRollup,
    KindRollup,
    ModelRollup,
    NameRollup,
    RetentionState,
    UsageRollup,
)

PART_COLUMNS = (
    "invocations", "completed", "failed", "running", "cost_count", "cost_sum", "duration_count",
    "duration_sum", "input_count", "input_sum", "output_count", "output_sum", "cache_read_count",
    "cache_read_sum", "cache_creation_count", "cache_creation_sum", "first_seen", "last_seen",
)  # fmt: skip
# The columns of PART_COLUMNS that are sums of integers, so subtracting buckets keeps them exact.
COUNT_COLUMNS = (
    "invocations", "completed", "failed", "running", "cost_count", "duration_count",
    "input_count", "input_sum", "output_count", "output_sum", "cache_read_count",
    "cache_read_sum", "cache_creation_count", "cache_creation_sum",
)  # fmt: skip
FINISHED = (Status.COMPLETED.value, Status.FAILED.value)
MAX_SEPARATE_READS = 16


def plan(filter: Filter, pieces: Pieces | None = None) -> Pieces:
    """The pieces that answer `filter`: `pieces` or the filter's own range split, except that a
    task's question, or a query inside `reading_raw_rows`, reads raw rows only."""
    if raw_only() or filter.task_id is not None:
        return raw_pieces(filter.since, filter.until)
    return pieces if pieces is not None else split_range(filter.since, filter.until)


def counting_plan(session: Session, filter: UsageFilter) -> Pieces:
    """The pieces that answer `filter` for sums of counts (failure counts, duration bins):
    `counted_pieces`, reading the purge state when they would subtract buckets."""
    counted = counted_pieces(filter, None)
    if counted.less:
        _, rollups_purged_before = purged_before(session)
        return counted_pieces(filter, rollups_purged_before)
    return counted


def counted_pieces(filter: UsageFilter, rollups_purged_before: datetime | None) -> Pieces:
    """`plan`'s pieces, or `split_counts`'s when they subtract no bucket that purging removed
    (buckets before `rollups_purged_before`, whose month or day may be kept)."""
    pieces = plan(filter)
    if raw_only() or filter.task_id is not None:
        return pieces
    counted = split_counts(filter.since, filter.until, data_version.utc_now())
    if counted.less and rollups_purged_before is not None:
        earliest = min(start for found in counted.less.values() for start, _ in found)
        if earliest is None or earliest < rollups_purged_before:
            return pieces
    return counted


def reads_bins(filter: Filter) -> bool:
    """Whether the counts of `filter` may come from the rollups' bins and error counts, which
    are kept per (kind, name, project): not for one model, one status or one task, nor inside
    `reading_raw_rows`."""
    return not raw_only() and all(
        value is None for value in (filter.task_id, filter.model, filter.status)
    )


def settled_range(session: Session, filter: UsageFilter) -> tuple[UsageFilter, Pieces] | None:
    """`filter` cut at the day two days back: its whole hours before that day, which have
    settled (`data_version.settled`), and the `counting_plan` of the rest (its leading part of
    an hour, read from the raw rows, included); None when no part has settled, or when the
    rollups cannot answer it (one task, one model or one status, or `reading_raw_rows`)."""
    if not reads_bins(filter):
        return None
    hour = ceil(filter.since, "hour") if filter.since is not None else None
    cut = floor(data_version.settled_before(), "day")
    if (hour is not None and hour >= cut) or (filter.until is not None and filter.until <= cut):
        return None
    rest = counting_plan(session, filter.replace(since=cut))
    if hour is not None and filter.since is not None and filter.since < hour:
        rest = replace(rest, raw=[*rest.raw, (filter.since, hour)])
    return filter.replace(since=hour, until=cut), rest


def settled_and_rest(
    session: Session,
    filter: UsageFilter,
    key: tuple[Any, ...],
    read: Callable[[UsageFilter, Pieces], tuple[Any, ...]],
) -> tuple[tuple[Any, ...], Pieces] | None:
    """What `read(settled, its counting_plan)` gives of `filter`'s settled range
    (`settled_range`), kept under `key` across the writes of recent invocations, and the pieces
    of the rest, which the caller reads each time; None when no part may be kept."""
    split = settled_range(session, filter)
    if split is None:
        return None
    settled, rest = split
    kept = kept_while_settled(
        session, (*key, settled), lambda: read(settled, counting_plan(session, settled))
    )
    return None if kept is None else (kept, rest)


@cache
def rollups_purged_before() -> Any:
    """The instant before which purging removed rollup buckets (NULL: never), as a scalar
    subquery labelled `rollups_purged_before`."""
    state = RetentionState.__table__
    found = sa.select(state.c.rollups_purged_before).where(state.c.id == 1).scalar_subquery()
    return found.label("rollups_purged_before")


def usage_parts(
    filter: Filter, pieces: Pieces | None = None, *, by: Sequence[str] = ("kind", "name")
) -> sa.Subquery:
    """Partial aggregates of the invocations matching `filter`, with the columns `by` (any of
    `kind`, `name`, `at`, a bucket's or an invocation's start, `model` and `project`, NULL
    for none) and PART_COLUMNS; each
    source is already grouped by `by`, so callers sum a few rows per group.

    `pieces` may cut the filter's range finer (a history's buckets); each piece must lie in it.
    Pieces with buckets to subtract (`split_counts`) give exact sums of COUNT_COLUMNS only: the
    subtracted rows hold NULL in the other columns.
    """
    pieces = plan(filter, pieces)
    if not pieces.uses_rollups:
        return _raw_branch(usage_rows(filter, intervals=pieces.raw), by).subquery("parts")
    branches: list[Any] = [
        branch
        for negated, grains in ((False, pieces.rollup), (True, pieces.less))
        for grain, intervals in grains.items()
        for branch in _rollup_branches(filter, grain, intervals, by, negated=negated)
    ]
    if filter.status is not Status.RUNNING and pieces.raw:
        rows = usage_rows(filter, intervals=pieces.raw)
        branches.append(_raw_branch(rows, by, where=[_finished()]))
    if filter.status in (None, Status.RUNNING):
        branches.append(_raw_branch(usage_rows(filter, running_only=True), by))
    return sa.union_all(*branches).subquery("parts")


def raw_parts(rows: sa.Subquery, *keys: Any) -> sa.Select[Any]:
    """The rows of `usage_rows` aggregated per `keys` (columns of theirs) in the shape of
    `usage_parts`."""
    return _aggregated(keys, _raw_measures()).select_from(rows)


def _raw_branch(rows: sa.Subquery, by: Sequence[str], where: Sequence[Any] = ()) -> Any:
    return _aggregated(_raw_keys(tuple(by)), _raw_measures()).select_from(rows).where(*where)


# The statements' pieces that hold no value are built once: building SQL expressions costs
# more than running these queries over the rollups.


_RAW_KEY_COLUMNS = {"at": "timestamp", "project": "project_id"}


@cache
def _raw_keys(by: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ROW[_RAW_KEY_COLUMNS.get(key, key)].label(key) for key in by)


@cache
def _raw_measures() -> tuple[Any, ...]:
    c = SimpleNamespace(**ROW)
    measured = sa.and_(c.status.in_(FINISHED), c.duration_seconds.is_not(None))
    return (
        sa.func.count().label("invocations"),
        _count_where(c.status == Status.COMPLETED.value).label("completed"),
        _count_where(c.status == Status.FAILED.value).label("failed"),
        _count_where(c.status == Status.RUNNING.value).label("running"),
        sa.func.count(c.cost_usd).label("cost_count"),
        sa.func.sum(c.cost_usd).label("cost_sum"),
        _count_where(measured).label("duration_count"),
        sa.func.sum(sa.case((measured, c.duration_seconds))).label("duration_sum"),
        sa.func.count(c.input_tokens).label("input_count"),
        sa.func.sum(c.input_tokens).label("input_sum"),
        sa.func.count(c.output_tokens).label("output_count"),
        sa.func.sum(c.output_tokens).label("output_sum"),
        sa.func.count(c.cache_read_tokens).label("cache_read_count"),
        sa.func.sum(c.cache_read_tokens).label("cache_read_sum"),
        sa.func.count(c.cache_creation_tokens).label("cache_creation_count"),
        sa.func.sum(c.cache_creation_tokens).label("cache_creation_sum"),
        sa.func.min(c.timestamp).label("first_seen"),
        sa.func.max(c.timestamp).label("last_seen"),
    )


def _count_where(condition: Any) -> Any:
    # COUNT skips the NULL of an unmatched CASE and is 0, not NULL, over no rows.
    return sa.func.count(sa.case((condition, 1)))


def _aggregated(keys: Sequence[Any], measures: Sequence[Any]) -> sa.Select[Any]:
    return sa.select(*keys, *measures).group_by(*keys)


def _rollup_branches(
    filter: Filter,
    grain: str,
    intervals: list[Interval],
    by: Sequence[str],
    *,
    negated: bool = False,
) -> list[sa.Select[Any]]:
    table = _rollup_table(filter, by)
    single = _row_per_group(table, filter, by)
    keys, measures = _rollup_columns(table, tuple(by), negated, summed=not single)
    read = sa.select(*keys, *measures) if single else _aggregated(keys, measures)
    return [read.where(*conditions) for conditions in rollup_scans(table, filter, grain, intervals)]


# The rollup tables' key columns: the `by` key each one is, and the filter field that fixes it.
_KEY_BY = {"kind": "kind", "name": "name", "project_key": "project", "model_key": "model"}
_KEY_FIXED_BY = {"kind": "kind", "name": "name", "project_key": "project_id", "model_key": "model"}


def _row_per_group(table: sa.Table, filter: Filter, by: Sequence[str]) -> bool:
    """Whether each rollup row of one grain is a group of its own for `by` under `filter`
    (every key column is in `by` or fixed by the filter): grouping such rows, as a trend line
    of hours would, only adds work."""
    if "at" not in by:
        return False
    for column in table.primary_key.columns:
        if column.name in ("grain", "bucket_start") or _KEY_BY.get(column.name) in by:
            continue
        field = _KEY_FIXED_BY.get(column.name, column.name)
        if getattr(filter, field, None) is None:
            return False
    return True


def _rollup_table(filter: Filter, by: Sequence[str]) -> sa.Table:
    """The rollup table with the fewest rows that tells apart what `filter` and `by` ask."""
    if filter.model is not None or filter.status is not None or "model" in by:
        return ModelRollup.__table__  # several times the rows: read only when needed
    if filter.project_id is not None or "project" in by:
        return UsageRollup.__table__
    if filter.name is None and "name" not in by:
        return KindRollup.__table__
    return NameRollup.__table__


@cache
def _rollup_columns(
    table: sa.Table, by: tuple[str, ...], negated: bool = False, *, summed: bool = True
) -> tuple[list[Any], list[Any]]:
    """The keys `by` and the PART_COLUMNS of a rollup table's rows: summed per group, or
    each row's own (`summed` False); negated for buckets to subtract."""
    c = table.c
    column = {"kind": sa.cast(c.kind, sa.String(16)), "at": c.bucket_start}
    if "project" in by:  # '' is the key of "no project", NULL in the raw rows
        column["project"] = sa.func.nullif(c.project_key, "")
    if "model" in by:
        column["model"] = sa.func.nullif(c.model_key, "")
    keys = [(c.name if key == "name" else column[key]).label(key) for key in by]
    total, least, greatest = (sa.func.sum, sa.func.min, sa.func.max) if summed else (_own,) * 3
    measures = [
        total(c[name]).label(name) if name != "running" else _zero().label(name)
        for name in PART_COLUMNS
        if name not in ("first_seen", "last_seen")
    ]
    measures += [least(c.first_seen).label("first_seen")]
    measures += [greatest(c.last_seen).label("last_seen")]
    if negated:
        measures = [
            (
                -measure.element
                if measure.name in COUNT_COLUMNS
                else sa.cast(sa.null(), measure.type)
            ).label(measure.name)
            for measure in measures
        ]
    return keys, measures


def _own(column: Any) -> Any:
    return column


def _zero() -> Any:
    return sa.literal_column("0", sa.BigInteger)


@cache
def _finished() -> Any:
    return ROW["status"].in_(FINISHED)


def rollup_scans(
    table: sa.Table, filter: Filter, grain: str, intervals: list[Interval]
) -> list[list[Any]]:
    """The conditions of the reads of a rollup table for the `grain` buckets starting in
    `intervals`, matching the filter's kind, and its name, project, model and status when the
    table has them (the caller picks a table that has what the filter asks for).

    One read per interval, each a range of the primary key (SQLite cannot combine ranges of a
    table without rowid), or one read of their bounding range when there are many.
    """
    c = table.c
    equal = [(c.kind, filter.kind.value if filter.kind is not None else None)]
    if "name" in c:
        equal.append((c.name, filter.name))
    if "project_key" in c:
        equal.append((c.project_key, filter.project_id))
    if "model_key" in c:
        equal.append((c.model_key, filter.model))
    if "status" in c:
        equal.append((c.status, filter.status.value if filter.status is not None else None))
    common = [c.grain == grain, *(column == value for column, value in equal if value is not None)]
    if len(intervals) <= MAX_SEPARATE_READS:
        return [[*common, within(c.bucket_start, [interval])] for interval in intervals]
    bounds = (intervals[0][0], intervals[-1][1])
    return [[*common, within(c.bucket_start, [bounds]), within(c.bucket_start, intervals)]]


def error_parts(filter: Filter, pieces: Pieces | None = None) -> sa.Subquery:
    """Failure counts of the invocations matching `filter`: columns `kind`, `name`,
    `error_message` and `count`, from the error rollups (counts of the pieces' `less` buckets
    negated) and the raw rows of the edges."""
    pieces = plan(filter, pieces)
    if filter.model is not None:  # error rollups are kept per (kind, name, project) only
        pieces = raw_pieces(filter.since, filter.until)
    branches: list[Any] = []
    if filter.status is None or filter.status is Status.FAILED:
        table = ErrorRollup.__table__
        kind = sa.cast(table.c.kind, sa.String(16)).label("kind")
        for grains, count in ((pieces.rollup, table.c.count), (pieces.less, -table.c.count)):
            branches += [
                sa.select(kind, table.c.name, table.c.error_message, count.label("count")).where(
                    *conditions
                )
                for grain, intervals in grains.items()
                for conditions in rollup_scans(table, filter, grain, intervals)
            ]
        if pieces.raw:
            rows = usage_rows(filter, intervals=pieces.raw)
            branches.append(
                sa.select(
                    ROW["kind"],
                    ROW["name"],
                    ROW["error_message"],
                    sa.literal_column("1", sa.BigInteger).label("count"),
                )
                .select_from(rows)
                .where(ROW["status"] == Status.FAILED.value, ROW["error_message"].is_not(None))
            )
    if not branches:  # asked for running or completed invocations only: no failures
        return (
            sa.select(
                sa.literal("agent").label("kind"),
                sa.literal("").label("name"),
                sa.literal("").label("error_message"),
                sa.literal(0).label("count"),
            )
            .where(sa.false())
            .subquery("errors")
        )
    return (branches[0] if len(branches) == 1 else sa.union_all(*branches)).subquery("errors")


def kinds_scope(filter: UsageFilter) -> tuple[Shape, dict[str, Any]] | None:
    """The question "under which kinds was `filter.name` ever recorded in `filter.project_id`
    (any project when it is None; the other filters are ignored), purged rows included", with
    its bind parameters named "kinds_..." (for `recorded_kinds_column`); None when the filter
    names no one."""
    if filter.name is None:
        return None
    scope = UsageFilter(kind=filter.kind, name=filter.name, project_id=filter.project_id)
    return bind(scope, plan(scope), prefix="kinds_")


def recorded_kinds_column(scope: Shape) -> Any:
    """The answer to a `kinds_scope` as a scalar subquery labelled `kinds`: the least and
    greatest kind, separated by a space, or NULL for none (read it with `kinds_of`)."""
    filter, pieces = scope.bound()
    kind = usage_parts(filter, pieces, by=("kind",)).c.kind
    both = sa.func.min(kind).op("||")(sa.literal_column("' '")).op("||")(sa.func.max(kind))
    return sa.select(both).scalar_subquery().label("kinds")


def kinds_of(column: str | None) -> set[Kind]:
    """The kinds of a `recorded_kinds_column` value."""
    return {Kind(kind) for kind in column.split(" ")} if column else set()


def kind_named(filter: UsageFilter, kinds: set[Kind]) -> Kind | None:
    """The kind a query naming an agent or skill reports, given the `kinds` it was recorded
    under (`kinds_scope`): the filter's, else the only one (None when it is both an agent and
    a skill).

    Raises NotFound when the name has no row at all (in the filter's project), so a typo is
    told apart from a name that was merely quiet in the range; a name of another project is
    unknown, so asking cannot reveal another project's names.
    """
    if not kinds:
        what = filter.kind.value if filter.kind is not None else "agent or skill"
        where = f" in project {filter.project_id!r}" if filter.project_id is not None else ""
        raise NotFound(f"no {what} named {filter.name!r} has been recorded{where}")
    if filter.kind is not None:
        return filter.kind
    return next(iter(kinds)) if len(kinds) == 1 else None
