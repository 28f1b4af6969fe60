"""Plain-Python answers to the query layer's questions, computed from the stored events.

The query tests compare the SQL results with these; they share no code with the query layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable
from statistics import fmean
from typing import Any

import pytest

from claude_api.events import Status, UsageEvent
from claude_api.models.sketch import RELATIVE_ACCURACY

TOTALS_FIELDS = (
    "invocations", "completed", "failed", "running", "success_rate", "total_cost_usd",
    "unpriced_invocations", "avg_cost_usd", "avg_duration_seconds", "input_tokens",
    "output_tokens", "cache_creation_tokens", "cache_read_tokens", "total_tokens",
)  # fmt: skip
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


def totals(events: Iterable[UsageEvent]) -> dict[str, Any]:
    """The UsageTotals fields of `events`, one stored row each."""
    events = list(events)
    statuses = Counter(event.status for event in events)
    completed, failed = statuses[Status.COMPLETED], statuses[Status.FAILED]
    costs = [e.cost_usd for e in events if e.cost_usd is not None]
    tokens = {field: _reported_sum(getattr(e, field) for e in events) for field in TOKEN_FIELDS}
    known = [count for count in tokens.values() if count is not None]
    return {
        "invocations": len(events),
        "completed": completed,
        "failed": failed,
        "running": statuses[Status.RUNNING],
        "success_rate": completed / (completed + failed) if completed + failed else None,
        # Unknown when there are invocations and none reports a cost; nothing costs nothing.
        "total_cost_usd": math.fsum(costs) if costs or not events else None,
        "unpriced_invocations": len(events) - len(costs),
        "avg_cost_usd": fmean(costs) if costs else None,
        "avg_duration_seconds": _mean(durations(events)),
        **tokens,
        "total_tokens": sum(known) if known or not events else None,
    }


def _reported_sum(values: Iterable[int | None]) -> int | None:
    """The sum of the values reported; 0 over no invocation, None (unknown) when there are
    invocations and none reports one."""
    values = list(values)
    reported = [value for value in values if value is not None]
    return sum(reported) if reported or not values else None


def durations(events: Iterable[UsageEvent]) -> list[float]:
    """The durations that count: those of finished invocations that report one."""
    return [
        e.duration_seconds
        for e in events
        if e.status is not Status.RUNNING and e.duration_seconds is not None
    ]


def nearest_rank(values: list[float], percent: int) -> float | None:
    """The nearest-rank percentile: the ceil(p/100 * n)-th smallest value."""
    if not values:
        return None
    return sorted(values)[math.ceil(percent / 100 * len(values)) - 1]


def close_percentile(actual: float | None, values: list[float], percent: int) -> bool:
    """Whether `actual` is the nearest-rank percentile of `values` within the sketch's relative
    accuracy (exact when the query read raw rows only)."""
    exact = nearest_rank(values, percent)
    if actual is None or exact is None:
        return actual is exact
    return abs(actual - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + 1e-9)


def top_errors(events: Iterable[UsageEvent], limit: int) -> list[tuple[str, str, str, int]]:
    """(kind, name, message, count) of failures, most frequent first, then name, kind, message."""
    counts = Counter(
        (e.kind.value, e.name, e.error_message)
        for e in events
        if e.status is Status.FAILED and e.error_message is not None
    )
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][1], *item[0][::2]))
    return [(kind, name, message, count) for (kind, name, message), count in ranked[:limit]]


def totals_of(result: Any) -> dict[str, Any]:
    """The UsageTotals fields of a result row."""
    fields = dataclasses.asdict(result)
    return {name: fields[name] for name in TOTALS_FIELDS}


def assert_totals(result: Any, events: Iterable[UsageEvent]) -> None:
    """`result` holds the totals of `events` (floats to rounding)."""
    actual, wanted = totals_of(result), totals(events)
    for name in TOTALS_FIELDS:
        if wanted[name] is None or isinstance(wanted[name], int):
            assert actual[name] == wanted[name], name
        else:
            assert actual[name] == pytest.approx(wanted[name], rel=1e-9), name


def _mean(values: list[float]) -> float | None:
    return fmean(values) if values else None
