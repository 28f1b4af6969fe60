"""Where the money goes: usage per model and per project, with the totals of them all."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.models.filters import UsageFilter
from claude_api.models.queries._aggregates import PART, totals_columns, totals_fields
from claude_api.models.queries._answer_cache import cached
from claude_api.models.queries._partial_sums import plan, usage_parts
from claude_api.models.queries._statement_shapes import Shape, bind, statements
from claude_api.models.results import Breakdown, ModelUsage, ProjectUsage, UsageTotals


@cached(settles=True)
def usage_by_model(session: Session, *, filter: UsageFilter) -> Breakdown:
    """The invocations matching `filter` per model (rows of `ModelUsage`, model None for those
    that name none), most costly first, then most run, then by model; and their totals."""
    rows = _breakdown(session, filter, "model")
    return Breakdown(
        rows=tuple(ModelUsage(model=row.model, **totals_fields(row)) for row in rows),
        totals=_totals(session, filter),
    )


@cached(settles=True)
def usage_by_project(session: Session, *, filter: UsageFilter) -> Breakdown:
    """The invocations matching `filter` per project (rows of `ProjectUsage`, project_id None
    for those outside any project), ordered as `usage_by_model`; and their totals."""
    rows = _breakdown(session, filter, "project")
    return Breakdown(
        rows=tuple(ProjectUsage(project_id=row.project, **totals_fields(row)) for row in rows),
        totals=_totals(session, filter),
    )


def _breakdown(session: Session, filter: UsageFilter, key: str) -> list[Any]:
    shape, values = bind(filter, plan(filter))
    found = session.execute(_breakdown_read(shape, key), values).all()
    # Sorted here rather than in SQL: unknown costs last on both backends, and names compared
    # by code point; there are few models and projects.
    return sorted(
        (row for row in found if row.invocations),
        key=lambda row: (
            row.total_cost_usd is None,
            -(row.total_cost_usd or 0.0),
            -int(row.invocations),
            getattr(row, key) is None,
            getattr(row, key) or "",
        ),
    )


def _totals(session: Session, filter: UsageFilter) -> UsageTotals:
    shape, values = bind(filter, plan(filter))
    return UsageTotals(**totals_fields(session.execute(_totals_read(shape), values).one_or_none()))


@statements
def _breakdown_read(shape: Shape, key: str) -> sa.Select[Any]:
    """A row of totals per `key` (`model` or `project`)."""
    filter, pieces = shape.bound()
    parts = usage_parts(filter, pieces, by=(key,))
    return sa.select(PART[key], *totals_columns()).select_from(parts).group_by(PART[key])


@statements
def _totals_read(shape: Shape) -> sa.Select[Any]:
    """The totals of every invocation matching the filter, in one row."""
    filter, pieces = shape.bound()
    return sa.select(*totals_columns()).select_from(usage_parts(filter, pieces, by=()))
