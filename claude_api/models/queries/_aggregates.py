"""Every aggregate of the query layer, defined once: counts, rates, sums, averages and error
counts over the partial aggregates of `usage_parts` and `error_parts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from claude_api.events import Kind
from claude_api.models.queries._numbers import as_float, as_int, as_known_int, as_usd
from claude_api.models.results import ErrorCount
from claude_api.models.types import UTCDateTime

# The columns of `usage_parts` by name, bound to no table: expressions over them name a column
# of whichever subquery they select from, so they are built once, not for every query.
PART = {
    name: sa.column(name, UTCDateTime() if name in ("at", "first_seen", "last_seen") else None)
    for name in (
        "kind", "name", "at", "model", "project", "invocations", "completed", "failed",
        "running", "cost_count", "cost_sum", "duration_count", "duration_sum", "input_count",
        "input_sum", "output_count", "output_sum", "cache_read_count", "cache_read_sum",
        "cache_creation_count",
        "cache_creation_sum", "first_seen", "last_seen",
    )
}  # fmt: skip
_PARTS = SimpleNamespace(**PART)


def _ratio(numerator: Any, denominator: Any) -> Any:
    # Both sides as floats, so every backend divides like Python does; NULL when nothing to rate.
    return sa.cast(numerator, sa.Float) / sa.cast(sa.func.nullif(denominator, 0), sa.Float)


@cache
def totals_columns() -> tuple[Any, ...]:
    """The `UsageTotals` aggregates over the rows of `usage_parts`, labelled with their field
    names: sums of the parts' counts and sums, and averages as sum / count."""
    c = _PARTS
    completed, failed = sa.func.sum(c.completed), sa.func.sum(c.failed)
    invocations = sa.func.coalesce(sa.func.sum(c.invocations), 0)
    priced = sa.func.coalesce(sa.func.sum(c.cost_count), 0)
    return (
        invocations.label("invocations"),
        completed.label("completed"),
        failed.label("failed"),
        sa.func.sum(c.running).label("running"),
        _ratio(completed, completed + failed).label("success_rate"),
        # The sum of the costs reported; 0 over no invocation, and NULL (unknown) when none of
        # the invocations reported a cost (the rollups hold 0 there).
        sa.case(
            (priced > 0, sa.func.sum(c.cost_sum)),
            (invocations == 0, sa.literal_column("0.0", sa.Float)),
        ).label("total_cost_usd"),
        (invocations - priced).label("unpriced_invocations"),
        _ratio(sa.func.sum(c.cost_sum), sa.func.sum(c.cost_count)).label("avg_cost_usd"),
        _ratio(sa.func.sum(c.duration_sum), sa.func.sum(c.duration_count)).label(
            "avg_duration_seconds"
        ),
        _reported_sum(c.input_sum, c.input_count, invocations).label("input_tokens"),
        _reported_sum(c.output_sum, c.output_count, invocations).label("output_tokens"),
        _reported_sum(c.cache_read_sum, c.cache_read_count, invocations).label("cache_read_tokens"),
        _reported_sum(c.cache_creation_sum, c.cache_creation_count, invocations).label(
            "cache_creation_tokens"
        ),
    )


def _reported_sum(total: Any, count: Any, invocations: Any) -> Any:
    # The sum of the values the invocations reported; 0 over no invocation, and NULL (unknown)
    # when none of them reported one (the rollups hold 0 there), as for the cost.
    return sa.case(
        (sa.func.coalesce(sa.func.sum(count), 0) > 0, sa.func.sum(total)),
        (invocations == 0, sa.literal_column("0", sa.BigInteger)),
    )


@cache
def stats_columns() -> tuple[Any, ...]:
    """`totals_columns` plus token averages and the first and last start time."""
    c = _PARTS
    return (
        *totals_columns(),
        _ratio(sa.func.sum(c.input_sum), sa.func.sum(c.input_count)).label("avg_input_tokens"),
        _ratio(sa.func.sum(c.output_sum), sa.func.sum(c.output_count)).label("avg_output_tokens"),
        sa.func.min(c.first_seen).label("first_seen_at"),
        sa.func.max(c.last_seen).label("last_seen_at"),
    )


def aggregate_select(
    parts: sa.Subquery, *, by_name: bool, where: Sequence[Any] = ()
) -> sa.Select[Any]:
    """One SELECT of `stats_columns` over `parts` (restricted by `where`), in one group or per
    (kind, name)."""
    keys = [PART["kind"], PART["name"]] if by_name else []
    return sa.select(*keys, *stats_columns()).select_from(parts).where(*where).group_by(*keys)


# How each `UsageTotals` field but `total_tokens` is read from a row of `totals_columns`.
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "invocations": as_int, "completed": as_int, "failed": as_int, "running": as_int,
    "success_rate": as_float, "total_cost_usd": as_usd, "unpriced_invocations": as_int,
    "avg_cost_usd": as_usd, "avg_duration_seconds": as_float, "input_tokens": as_known_int,
    "output_tokens": as_known_int, "cache_creation_tokens": as_known_int,
    "cache_read_tokens": as_known_int,
}  # fmt: skip
_TOKENS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
# The fields over no rows: nothing counted, nothing unknown.
_NO_ROWS: dict[str, Any] = {
    "invocations": 0, "completed": 0, "failed": 0, "running": 0, "success_rate": None,
    "total_cost_usd": 0.0, "unpriced_invocations": 0, "avg_cost_usd": None,
    "avg_duration_seconds": None, "input_tokens": 0, "output_tokens": 0,
    "cache_creation_tokens": 0, "cache_read_tokens": 0, "total_tokens": 0,
}  # fmt: skip


def totals_fields(row: Any) -> dict[str, Any]:
    """The `UsageTotals` fields of a row selected with `totals_columns` (or None: no rows)."""
    if row is None:
        return dict(_NO_ROWS)
    values = row._mapping  # read by key: a third of the cost of attributes
    fields = {name: read(values[name]) for name, read in _FIELDS.items()}
    fields["total_tokens"] = _known_sum([fields[name] for name in _TOKENS])
    return fields


def totals_series(rows: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
    """`totals_fields` of each of `rows` (None: no rows) as columns, one tuple per field."""
    values = [None if row is None else row._mapping for row in rows]
    columns = {
        name: tuple(_NO_ROWS[name] if found is None else read(found[name]) for found in values)
        for name, read in _FIELDS.items()
    }
    tokens = zip(*(columns[name] for name in _TOKENS), strict=True)
    columns["total_tokens"] = tuple(_known_sum(counts) for counts in tokens)
    return columns


def _known_sum(counts: Sequence[int | None]) -> int | None:
    """The sum of the counts that are known; None (unknown) when none is."""
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


# A failure's (kind, name, error message).
ErrorKey = tuple[str, str, str]


def top_errors_of(counts: Mapping[ErrorKey, int], limit: int) -> list[ErrorCount]:
    """The `limit` most frequent failures of `counts`, ties broken by name, kind, then message
    (in code point order, which is the byte order of their UTF-8); a count that came to
    nothing (buckets added, then subtracted) is left out."""
    ranked = sorted(
        ((key, count) for key, count in counts.items() if count > 0),
        key=lambda item: (-item[1], item[0][1], item[0][0], item[0][2]),
    )
    return [
        ErrorCount(kind=Kind(kind), name=name, error_message=message, count=count)
        for (kind, name, message), count in ranked[:limit]
    ]
