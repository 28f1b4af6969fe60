"""The rows every query reads: one usage table for a kind, or both as a union, filtered.

Also the small pieces all queries share: byte-order comparison of names, number coercion and
the lookup that tells an unknown name (NotFound) from a quiet one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from claude_api.errors import NotFound
from claude_api.models.events import Kind
from claude_api.models.filters import UsageFilter
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES

SHARED_COLUMNS = (
    "event_id", "task_id", "parent_id", "project_id", "timestamp", "finished_at", "status",
    "duration_seconds", "cost_usd", "input_tokens", "output_tokens", "model", "error_message",
)  # fmt: skip


def usage_rows(filter: UsageFilter) -> sa.Subquery:
    """Every invocation matching `filter`, as a subquery with the columns `kind`, `name` and
    `SHARED_COLUMNS`; kind None reads both tables through UNION ALL.

    The filter is applied inside each branch, so each table's indexes serve it.
    """
    kinds = [filter.kind] if filter.kind is not None else list(Kind)
    branches = []
    for kind in kinds:
        table = USAGE_TABLES[kind].__table__
        name = table.c[NAME_COLUMNS[kind]]
        branches.append(
            sa.select(
                # A cast, so PostgreSQL can type the literal in a UNION without a hint.
                sa.cast(sa.literal(kind.value), sa.String(16)).label("kind"),
                name.label("name"),
                *(table.c[column] for column in SHARED_COLUMNS),
            ).where(*_conditions(filter, table, name))
        )
    rows = branches[0] if len(branches) == 1 else sa.union_all(*branches)
    return rows.subquery("usage")


def _conditions(filter: UsageFilter, table: sa.Table, name: sa.Column[str]) -> list[Any]:
    columns = table.c
    equal = [
        (name, filter.name),
        (columns.task_id, filter.task_id),
        (columns.project_id, filter.project_id),
        (columns.model, filter.model),
        (columns.status, filter.status.value if filter.status is not None else None),
    ]
    conditions: list[Any] = [column == value for column, value in equal if value is not None]
    if filter.since is not None:
        conditions.append(columns.timestamp >= filter.since)
    if filter.until is not None:
        conditions.append(columns.timestamp < filter.until)
    return conditions


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


def recorded_kinds(session: Session, filter: UsageFilter) -> set[Kind]:
    """The kinds under which `filter.name` was ever recorded in `filter.project_id` (any
    project when it is None; the other filters are ignored)."""
    scope = UsageFilter(kind=filter.kind, name=filter.name, project_id=filter.project_id)
    rows = usage_rows(scope)
    return {Kind(kind) for kind in session.execute(sa.select(rows.c.kind).distinct()).scalars()}


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


def as_int(value: int | Decimal | None) -> int:
    """An integer sum as int; PostgreSQL sums BIGINT as NUMERIC, and an empty sum is NULL."""
    return 0 if value is None else int(value)


def as_float(value: float | Decimal | None) -> float | None:
    """An average or ratio as float (PostgreSQL averages integers as NUMERIC)."""
    return None if value is None else float(value)
