"""The raw rows every query reads: one usage table for a kind, or both as a union, filtered.

Also two SQL functions the queries share: byte-order comparison of names, and a column kept
out of index choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from claude_api.events import CostSource, Kind, Status
from claude_api.models.queries._range_split import Interval
from claude_api.models.queries._statement_shapes import Filter
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES

SHARED_COLUMNS = (
    "event_id", "task_id", "parent_id", "project_id", "timestamp", "finished_at", "status",
    "duration_seconds", "cost_usd", "cost_source", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_creation_tokens", "model", "error_message", "source",
)  # fmt: skip
_TABLE = USAGE_TABLES[Kind.AGENT].__table__
# The columns of `usage_rows` by name, bound to no table, with their types: expressions over
# them name a column of whichever subquery they select from, so they can be built once.
ROW: dict[str, sa.ColumnClause[Any]] = {
    "kind": sa.column("kind", sa.String(16)),
    "name": sa.column("name", sa.String()),
    **{name: sa.column(name, _TABLE.c[name].type) for name in SHARED_COLUMNS},
}


def usage_rows(
    filter: Filter,
    *,
    intervals: Sequence[Interval] | None = None,
    running_only: bool = False,
    task_ids: bool = False,
) -> sa.Subquery:
    """Every invocation matching `filter`, as a subquery with the columns `kind`, `name` and
    `SHARED_COLUMNS`; kind None reads both tables through UNION ALL.

    `intervals`, when given, replace the filter's since/until: the start time must lie in one
    of them, and they must lie in the filter's range. `running_only` keeps running invocations
    only (found through a partial index). `task_ids` keeps the tasks listed in the expanding
    bind parameter `task_ids`, found through the task id index (the filter is tested on their
    rows). The filter is applied inside each branch, so each table's indexes serve it.
    """
    kinds = [filter.kind] if filter.kind is not None else list(Kind)
    branches = []
    for kind in kinds:
        table = USAGE_TABLES[kind].__table__
        name = table.c[NAME_COLUMNS[kind]]
        branch = sa.select(*_row_columns(kind)).where(
            *_conditions(filter, table, name, intervals, running_only, task_ids)
        )
        branches.append(branch)
    rows = branches[0] if len(branches) == 1 else sa.union_all(*branches)
    return rows.subquery("usage")


@cache
def _row_columns(kind: Kind) -> tuple[Any, ...]:
    table = USAGE_TABLES[kind].__table__
    return (
        # A cast, so PostgreSQL can type the literal in a UNION without a hint.
        sa.cast(sa.literal(kind.value), sa.String(16)).label("kind"),
        table.c[NAME_COLUMNS[kind]].label("name"),
        *(table.c[column] for column in SHARED_COLUMNS),
    )


def _conditions(
    filter: Filter,
    table: sa.Table,
    name: sa.Column[str],
    intervals: Sequence[Interval] | None,
    running_only: bool,
    task_ids: bool = False,
) -> list[Any]:
    columns = table.c
    # The listed tasks' rows through the task id index: SQLite, without statistics, would
    # rather read all of a name's rows, or all of a range's, through their index.
    plain = not_indexed if task_ids else _indexed
    equal = [
        # Running rows are found through their partial index; SQLite, without statistics,
        # would rather read all of a name's rows through the name's index.
        (not_indexed(name) if running_only or task_ids else name, filter.name),
        (plain(columns.task_id), filter.task_id),
        (plain(columns.project_id), filter.project_id),
        (plain(columns.model), filter.model),
        (plain(columns.status), filter.status.value if filter.status is not None else None),
    ]
    conditions: list[Any] = [column == value for column, value in equal if value is not None]
    timestamp = plain(columns.timestamp)
    if intervals is not None:
        # Pieces of the filter's range: alone, so the index serves each piece, not the range.
        conditions.append(within(timestamp, intervals))
    else:
        if filter.since is not None:
            conditions.append(timestamp >= filter.since)
        if filter.until is not None:
            conditions.append(timestamp < filter.until)
    if running_only:
        # A literal, so SQLite sees that the partial index on running rows applies.
        conditions.append(columns.status == sa.literal_column(f"'{Status.RUNNING.value}'"))
    if task_ids:
        conditions.append(table.c.task_id.in_(sa.bindparam("task_ids", expanding=True)))
    return conditions


def _indexed(column: Any) -> Any:
    return column


def within(column: Any, intervals: Sequence[Interval]) -> Any:
    """`column` in any of the half-open `intervals`."""
    terms = []
    for start, end in intervals:
        bounds = []
        if start is not None:
            bounds.append(column >= start)
        if end is not None:
            bounds.append(column < end)
        terms.append(sa.and_(sa.true(), *bounds))
    return sa.or_(sa.false(), *terms)


class bytewise(FunctionElement[str]):  # lower case: it reads like the SQL function it wraps
    """A text expression compared and sorted by code point on every backend.

    SQLite compares text bytewise already; PostgreSQL would follow the database's locale, so
    orders, tie-breaks and cursors would differ between backends and deployments.
    """

    inherit_cache = True
    type = sa.String()


@compiles(bytewise)
def _compile_bytewise(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(bytewise, "postgresql")
def _compile_bytewise_postgresql(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'{compiler.process(element.clauses, **kw)} COLLATE "C"'


class not_indexed(FunctionElement[Any]):  # lower case: it reads like the SQL it stands for
    """A column that SQLite must not look up through its index (SQLite's unary plus), of the
    column's type."""

    inherit_cache = True

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(not_indexed)
def _compile_not_indexed(element: not_indexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(not_indexed, "sqlite")
def _compile_not_indexed_sqlite(element: not_indexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def usage_fields(row: Any) -> dict[str, Any]:
    """The `TaskUsage` fields of a row of `usage_rows`."""
    cost_source = row.cost_source
    return {
        "kind": Kind(row.kind),
        "name": row.name,
        "event_id": row.event_id,
        "parent_id": row.parent_id,
        "project_id": row.project_id,
        "status": Status(row.status),
        "timestamp": row.timestamp,
        "finished_at": row.finished_at,
        "duration_seconds": row.duration_seconds,
        "cost_usd": row.cost_usd,
        "cost_source": CostSource(cost_source) if cost_source is not None else None,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_creation_tokens": row.cache_creation_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "model": row.model,
        "error_message": row.error_message,
        "source": row.source,
    }
