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

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import NotFound
from claude_api.models.events import Kind, Status
from claude_api.models.filters import UsageFilter
from claude_api.models.queries._pieces import (
    Interval,
    Pieces,
    raw_only,
    raw_pieces,
    split_range,
)
from claude_api.models.queries._source import usage_rows, within
from claude_api.models.rollup_tables import ErrorRollup, UsageRollup

PART_COLUMNS = (
    "invocations", "completed", "failed", "running", "cost_count", "cost_sum", "duration_count",
    "duration_sum", "input_count", "input_sum", "output_count", "output_sum", "first_seen",
    "last_seen",
)  # fmt: skip
FINISHED = (Status.COMPLETED.value, Status.FAILED.value)


def plan(filter: UsageFilter, pieces: Pieces | None = None) -> Pieces:
    """The pieces that answer `filter`: `pieces` or the filter's own range split, except that a
    task's question, or a query inside `reading_raw_rows`, reads raw rows only."""
    if raw_only() or filter.task_id is not None:
        return raw_pieces(filter.since, filter.until)
    return pieces if pieces is not None else split_range(filter.since, filter.until)


def usage_parts(filter: UsageFilter, pieces: Pieces | None = None) -> sa.Subquery:
    """Partial aggregates of the invocations matching `filter`, with the columns `kind`, `name`,
    `at` (a bucket's or an invocation's start) and PART_COLUMNS.

    `pieces` may cut the filter's range finer (a history's buckets); each piece must lie in it.
    """
    pieces = plan(filter, pieces)
    if not pieces.uses_rollups:
        return raw_parts(usage_rows(filter, intervals=pieces.raw)).subquery("parts")
    branches: list[Any] = [
        _rollup_parts(filter, grain, intervals) for grain, intervals in pieces.rollup.items()
    ]
    if filter.status is not Status.RUNNING and pieces.raw:
        rows = usage_rows(filter, intervals=pieces.raw)
        branches.append(raw_parts(rows, where=[rows.c.status.in_(FINISHED)]))
    if filter.status in (None, Status.RUNNING):
        branches.append(raw_parts(usage_rows(filter, running_only=True)))
    return sa.union_all(*branches).subquery("parts")


def raw_parts(rows: sa.Subquery, *extra: Any, where: list[Any] | None = None) -> sa.Select[Any]:
    """The rows of `usage_rows` in the shape of `usage_parts` (each one invocation), with
    `extra` columns of theirs."""
    c = rows.c
    measured = sa.and_(c.status.in_(FINISHED), c.duration_seconds.is_not(None))
    return sa.select(
        c.kind,
        c.name,
        c.timestamp.label("at"),
        sa.literal_column("1", sa.BigInteger).label("invocations"),
        _flag(c.status == Status.COMPLETED.value).label("completed"),
        _flag(c.status == Status.FAILED.value).label("failed"),
        _flag(c.status == Status.RUNNING.value).label("running"),
        _flag(c.cost_usd.is_not(None)).label("cost_count"),
        c.cost_usd.label("cost_sum"),
        _flag(measured).label("duration_count"),
        sa.case((measured, c.duration_seconds)).label("duration_sum"),
        _flag(c.input_tokens.is_not(None)).label("input_count"),
        c.input_tokens.label("input_sum"),
        _flag(c.output_tokens.is_not(None)).label("output_count"),
        c.output_tokens.label("output_sum"),
        c.timestamp.label("first_seen"),
        c.timestamp.label("last_seen"),
        *extra,
    ).where(*(where or []))


def _flag(condition: Any) -> Any:
    return sa.case((condition, 1), else_=0)


def _rollup_parts(filter: UsageFilter, grain: str, intervals: list[Interval]) -> sa.Select[Any]:
    table = UsageRollup.__table__
    c = table.c
    zero = sa.literal_column("0", sa.BigInteger)
    return sa.select(
        sa.cast(c.kind, sa.String(16)).label("kind"),
        c.name,
        c.bucket_start.label("at"),
        c.invocations,
        sa.case((c.status == Status.COMPLETED.value, c.invocations), else_=0).label("completed"),
        sa.case((c.status == Status.FAILED.value, c.invocations), else_=0).label("failed"),
        zero.label("running"),
        *(c[name] for name in PART_COLUMNS[4:]),
    ).where(*rollup_conditions(table, filter, grain, intervals))


def rollup_conditions(
    table: sa.Table, filter: UsageFilter, grain: str, intervals: list[Interval]
) -> list[Any]:
    """The rows of a rollup table for `grain` buckets starting in `intervals`, matching the
    filter's kind, name, project, model and (when the table has one) status."""
    c = table.c
    conditions: list[Any] = [c.grain == grain, within(c.bucket_start, intervals)]
    equal = [
        (c.kind, filter.kind.value if filter.kind is not None else None),
        (c.name, filter.name),
        (c.project_key, filter.project_id),
        (c.model_key, filter.model),
    ]
    if "status" in c:
        equal.append((c.status, filter.status.value if filter.status is not None else None))
    conditions += [column == value for column, value in equal if value is not None]
    return conditions


def error_parts(filter: UsageFilter, pieces: Pieces | None = None) -> sa.Subquery:
    """Failure counts of the invocations matching `filter`: columns `kind`, `name`,
    `error_message` and `count`, from the error rollups and the raw rows of the edges."""
    pieces = plan(filter, pieces)
    branches: list[Any] = []
    if filter.status is None or filter.status is Status.FAILED:
        table = ErrorRollup.__table__
        for grain, intervals in pieces.rollup.items():
            branches.append(
                sa.select(
                    sa.cast(table.c.kind, sa.String(16)).label("kind"),
                    table.c.name,
                    table.c.error_message,
                    table.c.count,
                ).where(*rollup_conditions(table, filter, grain, intervals))
            )
        if pieces.raw:
            rows = usage_rows(filter, intervals=pieces.raw)
            branches.append(
                sa.select(
                    rows.c.kind,
                    rows.c.name,
                    rows.c.error_message,
                    sa.literal_column("1", sa.BigInteger).label("count"),
                ).where(rows.c.status == Status.FAILED.value, rows.c.error_message.is_not(None))
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


def recorded_kinds(session: Session, filter: UsageFilter) -> set[Kind]:
    """The kinds under which `filter.name` was ever recorded in `filter.project_id` (any
    project when it is None; the other filters are ignored), purged rows included."""
    scope = UsageFilter(kind=filter.kind, name=filter.name, project_id=filter.project_id)
    parts = usage_parts(scope)
    return {Kind(kind) for kind in session.execute(sa.select(parts.c.kind).distinct()).scalars()}


def resolve_kind(session: Session, filter: UsageFilter) -> Kind | None:
    """The kind a named query reports: the filter's, else the only one the name is recorded
    under (None when it is both an agent and a skill).

    Raises NotFound when the filter names an agent or skill that has no row at all (in the
    filter's project), so a typo is told apart from a name that was merely quiet in the range;
    a name of another project is unknown, so asking cannot reveal another project's names.
    """
    if filter.name is None:
        return filter.kind
    kinds = recorded_kinds(session, filter)
    if not kinds:
        what = filter.kind.value if filter.kind is not None else "agent or skill"
        where = f" in project {filter.project_id!r}" if filter.project_id is not None else ""
        raise NotFound(f"no {what} named {filter.name!r} has been recorded{where}")
    if filter.kind is not None:
        return filter.kind
    return next(iter(kinds)) if len(kinds) == 1 else None
