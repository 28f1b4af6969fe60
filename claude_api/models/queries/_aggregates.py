"""Every aggregate of the query layer, defined once: counts, rates, sums, averages, percentiles
and error counts over the rows of `usage_rows`. Rollup tables will replace these in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from claude_api.models.events import Kind, Status
from claude_api.models.queries._source import as_float, as_int, bytewise
from claude_api.models.results import ErrorCount

FINISHED = (Status.COMPLETED.value, Status.FAILED.value)
PERCENTILES = {"p50_duration_seconds": 50, "p95_duration_seconds": 95}
_RANK = "duration_rank"
_MEASURED = "measured_count"


def _count_where(condition: Any) -> Any:
    # COUNT skips the NULL of an unmatched CASE and is 0, not NULL, over no rows.
    return sa.func.count(sa.case((condition, 1)))


def _ratio(numerator: Any, denominator: Any) -> Any:
    # Both sides as floats, so every backend divides like Python does; NULL when nothing to rate.
    return sa.cast(numerator, sa.Float) / sa.cast(sa.func.nullif(denominator, 0), sa.Float)


def _measured(columns: Any) -> Any:
    """Rows whose duration counts: finished runs that report one."""
    return sa.and_(columns.status.in_(FINISHED), columns.duration_seconds.is_not(None))


def totals_columns(rows: sa.FromClause) -> list[Any]:
    """The `UsageTotals` aggregates over `rows`, labelled with their field names."""
    c = rows.c
    completed = _count_where(c.status == Status.COMPLETED.value)
    failed = _count_where(c.status == Status.FAILED.value)
    return [
        sa.func.count().label("invocations"),
        completed.label("completed"),
        failed.label("failed"),
        _count_where(c.status == Status.RUNNING.value).label("running"),
        _ratio(completed, completed + failed).label("success_rate"),
        sa.func.sum(c.cost_usd).label("total_cost_usd"),
        sa.func.avg(c.cost_usd).label("avg_cost_usd"),
        sa.func.avg(sa.case((_measured(c), c.duration_seconds))).label("avg_duration_seconds"),
        sa.func.sum(c.input_tokens).label("input_tokens"),
        sa.func.sum(c.output_tokens).label("output_tokens"),
    ]


def stats_columns(rows: sa.FromClause) -> list[Any]:
    """`totals_columns` plus token averages and the first and last start time."""
    c = rows.c
    return [
        *totals_columns(rows),
        sa.func.avg(c.input_tokens).label("avg_input_tokens"),
        sa.func.avg(c.output_tokens).label("avg_output_tokens"),
        sa.func.min(c.timestamp).label("first_seen_at"),
        sa.func.max(c.timestamp).label("last_seen_at"),
    ]


def aggregate_select(
    rows: sa.Subquery, *, by_name: bool, percentiles: bool = False, where: Sequence[Any] = ()
) -> sa.Select[Any]:
    """One SELECT of `stats_columns` over `rows` (restricted by `where`), in one group or per
    (kind, name); with `percentiles`, also the p50 and p95 durations.

    Percentiles are nearest-rank, exact and portable: among the n measured durations of a group
    sorted ascending, the p-th percentile is the k-th with k = ceil(p * n / 100), i.e. the
    smallest value such that at least p% of the values are less than or equal to it. Window
    functions rank the durations per group; no percentile_cont, which SQLite lacks.
    """
    source: sa.FromClause = rows
    if percentiles:
        keys = [rows.c.kind, rows.c.name] if by_name else []
        window: dict[str, Any] = {"partition_by": [*keys, _measured(rows.c)]}
        source = (
            sa.select(
                *rows.c,
                sa.func.row_number().over(order_by=rows.c.duration_seconds, **window).label(_RANK),
                sa.func.count().over(**window).label(_MEASURED),
            )
            .where(*where)
            .subquery("ranked")
        )
        where = ()
    keys = [source.c.kind, source.c.name] if by_name else []
    columns = [*keys, *stats_columns(source)]
    if percentiles:
        columns += [_percentile(source, p).label(label) for label, p in PERCENTILES.items()]
    return sa.select(*columns).where(*where).group_by(*keys)


def _percentile(ranked: sa.FromClause, p: int) -> Any:
    c = ranked.c
    rank, size = c[_RANK], c[_MEASURED]
    # rank = ceil(p * size / 100) in integer arithmetic: no division, so no backend differences.
    nearest = sa.and_(_measured(c), rank * 100 >= size * p, (rank - 1) * 100 < size * p)
    return sa.func.max(sa.case((nearest, c.duration_seconds)))


def totals_fields(row: Any) -> dict[str, Any]:
    """The `UsageTotals` fields of a row selected with `totals_columns` (or None: no rows)."""
    if row is None:
        return {
            "invocations": 0, "completed": 0, "failed": 0, "running": 0, "success_rate": None,
            "total_cost_usd": 0.0, "avg_cost_usd": None, "avg_duration_seconds": None,
            "input_tokens": 0, "output_tokens": 0,
        }  # fmt: skip
    return {
        "invocations": as_int(row.invocations),
        "completed": as_int(row.completed),
        "failed": as_int(row.failed),
        "running": as_int(row.running),
        "success_rate": as_float(row.success_rate),
        "total_cost_usd": as_float(row.total_cost_usd) or 0.0,
        "avg_cost_usd": as_float(row.avg_cost_usd),
        "avg_duration_seconds": as_float(row.avg_duration_seconds),
        "input_tokens": as_int(row.input_tokens),
        "output_tokens": as_int(row.output_tokens),
    }


def error_counts_select(
    rows: sa.Subquery, *, limit: int, per_name: bool, where: Sequence[Any] = ()
) -> sa.Select[Any]:
    """Failed invocations counted per (kind, name, error message), the `limit` most frequent
    overall or, with `per_name`, per (kind, name); ties broken by name, kind, then message.

    Only `failed` rows with an error message count.
    """
    c = rows.c
    count = sa.func.count()
    place = sa.func.row_number().over(
        partition_by=[c.kind, c.name] if per_name else None,
        order_by=[count.desc(), bytewise(c.name), c.kind, bytewise(c.error_message)],
    )
    counted = (
        sa.select(c.kind, c.name, c.error_message, count.label("count"), place.label("place"))
        .where(c.status == Status.FAILED.value, c.error_message.is_not(None), *where)
        .group_by(c.kind, c.name, c.error_message)
        .subquery("errors")
    )
    selected = sa.select(
        counted.c.kind, counted.c.name, counted.c.error_message, counted.c.count
    ).where(counted.c.place <= limit)
    if per_name:
        return selected.order_by(bytewise(counted.c.name), counted.c.kind, counted.c.place)
    return selected.order_by(counted.c.place)


def error_count(row: Any) -> ErrorCount:
    """An `ErrorCount` from a row of `error_counts_select`."""
    return ErrorCount(
        kind=Kind(row.kind), name=row.name, error_message=row.error_message, count=int(row.count)
    )
