"""The typed results of the query layer: plain frozen data, never ORM rows.

Field names are the REST JSON keys (and, camel-cased, the GraphQL fields). Times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Generic, TypeVar
from uuid import UUID

from claude_api.events import CostSource, Kind, Status
from claude_api.models.filters import LeaderboardMetric, Period

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class UsageTotals:
    """Counts and sums over a set of invocations.

    `running` rows count as invocations but not toward `success_rate` or durations, which only
    finished (completed or failed) rows feed. `success_rate` = completed / (completed + failed),
    None without a finished run. Costs and tokens sum what the rows report; the averages are over
    the rows that report a value (None when none does).

    `total_cost_usd` is None (unknown) when there are invocations and none reports a cost, 0.0
    when there are none; `unpriced_invocations` counts those without a cost, so a sum over
    partly priced invocations says that it is partial. Each token count is None (unknown) in
    the same way, when there are invocations and none reports it; `total_tokens` is input +
    output + cache creation + cache read tokens, of those known (None when none is).
    """

    invocations: int
    completed: int
    failed: int
    running: int
    success_rate: float | None
    total_cost_usd: float | None
    unpriced_invocations: int
    avg_cost_usd: float | None
    avg_duration_seconds: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_tokens: int | None
    cache_read_tokens: int | None
    total_tokens: int | None


@dataclass(frozen=True, kw_only=True)
class ErrorCount:
    """How many failed invocations of one agent or skill ended with one error message."""

    kind: Kind
    name: str
    error_message: str
    count: int


@dataclass(frozen=True, kw_only=True)
class UsageStats(UsageTotals):
    """Statistics of one agent or skill (or, with `name` None, of every invocation matched).

    `kind` is None when the rows come from both tables. Percentiles are nearest-rank over the
    durations of finished runs, within 1% of the exact value when read from the rollups.
    `top_errors` are its most frequent failure messages.
    """

    kind: Kind | None
    name: str | None
    avg_input_tokens: float | None
    avg_output_tokens: float | None
    p50_duration_seconds: float | None
    p95_duration_seconds: float | None
    p99_duration_seconds: float | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    top_errors: tuple[ErrorCount, ...]


@dataclass(frozen=True, kw_only=True)
class LeaderboardEntry:
    """One place on a leaderboard: ranks run 1..n, ties broken by name, then kind."""

    rank: int
    kind: Kind
    name: str
    metric: LeaderboardMetric
    value: float
    invocations: int
    unpriced_invocations: int


@dataclass(frozen=True, kw_only=True)
class HistoryBucket(UsageTotals):
    """One calendar day, week or month of a history.

    `period_start` is the bucket's first local date; `start_at`/`end_at` are the UTC instants
    counted, the calendar bucket clipped to the history's range.
    """

    period_start: date
    start_at: datetime
    end_at: datetime


@dataclass(frozen=True, kw_only=True)
class HistorySeries:
    """The buckets of a history as columns: each field holds that field of every bucket, in
    order (`HistoryBucket` says what each is). A history's points are read as columns: an
    object per bucket costs more than its figures, over months of days and dozens of names."""

    period_start: tuple[date, ...]
    start_at: tuple[datetime, ...]
    end_at: tuple[datetime, ...]
    invocations: tuple[int, ...]
    completed: tuple[int, ...]
    failed: tuple[int, ...]
    running: tuple[int, ...]
    success_rate: tuple[float | None, ...]
    total_cost_usd: tuple[float | None, ...]
    unpriced_invocations: tuple[int, ...]
    avg_cost_usd: tuple[float | None, ...]
    avg_duration_seconds: tuple[float | None, ...]
    input_tokens: tuple[int | None, ...]
    output_tokens: tuple[int | None, ...]
    cache_creation_tokens: tuple[int | None, ...]
    cache_read_tokens: tuple[int | None, ...]
    total_tokens: tuple[int | None, ...]


@dataclass(frozen=True, kw_only=True)
class HistoryScope:
    """What a history counts: one agent or skill (or all), per `period` in `tz`, over
    [start_at, end_at)."""

    kind: Kind | None
    name: str | None
    period: Period
    tz: str
    start_at: datetime
    end_at: datetime


@dataclass(frozen=True, kw_only=True)
class History(HistoryScope):
    """Invocations per calendar bucket, empty buckets included, as columns (`series`) or one
    `HistoryBucket` each (`buckets`); `totals` over the whole range."""

    series: HistorySeries
    totals: UsageTotals

    @cached_property
    def buckets(self) -> tuple[HistoryBucket, ...]:
        """The series' buckets, one object each, made when first asked for."""
        columns = vars(self.series)
        return tuple(
            HistoryBucket(**dict(zip(columns, values, strict=True)))
            for values in zip(*columns.values(), strict=True)
        )


@dataclass(frozen=True, kw_only=True)
class ReportRow(UsageTotals):
    """One agent or skill in a report."""

    kind: Kind
    name: str


@dataclass(frozen=True, kw_only=True)
class ModelUsage(UsageTotals):
    """The invocations of one model; `model` None for those that name none."""

    model: str | None


@dataclass(frozen=True, kw_only=True)
class ProjectUsage(UsageTotals):
    """The invocations of one project; `project_id` None for those outside any project."""

    project_id: str | None


@dataclass(frozen=True, kw_only=True)
class Breakdown:
    """Invocations per model or per project (`rows`, most costly first, then most run; unknown
    cost last) and the `totals` of them all."""

    rows: tuple[ModelUsage, ...] | tuple[ProjectUsage, ...]
    totals: UsageTotals


@dataclass(frozen=True, kw_only=True)
class PeriodChange:
    """A period against the previous one: `_delta` is current - previous (None when either is
    unknown), `_relative` is the delta divided by the previous value (None when the previous
    value is 0 or None)."""

    invocations_delta: int
    invocations_relative: float | None
    total_cost_usd_delta: float | None
    total_cost_usd_relative: float | None
    success_rate_delta: float | None
    success_rate_relative: float | None


@dataclass(frozen=True, kw_only=True)
class Report:
    """A day, week or month in the filter's time zone, and how it compares with the previous one.

    `agents` and `skills` are ordered by invocations (most first), then name.
    """

    period: Period
    tz: str
    period_start: date
    start_at: datetime
    end_at: datetime
    # A period not over yet is reported so far: its totals cover start_at to until_at (the
    # report's "now"), and the previous ones the same stretch of the period before.
    so_far: bool
    until_at: datetime
    previous_start_at: datetime
    previous_end_at: datetime
    # Set when the current period had no invocation yet and the report shows the latest period
    # with some instead: the first date of that empty current period.
    empty_period_start: date | None
    totals: UsageTotals
    previous_totals: UsageTotals
    change: PeriodChange
    agents: tuple[ReportRow, ...]
    skills: tuple[ReportRow, ...]
    top_failures: tuple[ErrorCount, ...]


@dataclass(frozen=True, kw_only=True)
class TaskUsage:
    """One invocation within a task. `parent_id` is the event id of the invocation that ran it:
    a skill's agent invocation, a subagent's task invocation."""

    kind: Kind
    name: str
    event_id: UUID
    parent_id: UUID | None
    project_id: str | None
    status: Status
    timestamp: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    cost_usd: float | None
    cost_source: CostSource | None
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_tokens: int | None
    cache_read_tokens: int | None
    model: str | None
    error_message: str | None
    source: str


@dataclass(frozen=True, kw_only=True)
class TaskInvocation(TaskUsage):
    """One invocation within a task with the cost of its subtree: `total_cost_usd` sums the
    costs reported by it and everything it ran, transitively (None when none reports one);
    `unpriced_invocations` counts the invocations of the subtree without a cost."""

    total_cost_usd: float | None
    unpriced_invocations: int


@dataclass(frozen=True, kw_only=True)
class InvocationRecord(TaskUsage):
    """One invocation with the task that ran it: a row of either usage table."""

    task_id: str


@dataclass(frozen=True, kw_only=True)
class TaskSummary:
    """A whole task, summarised over all its invocations; costs and tokens as in `UsageTotals`.

    `status` is running while any of its invocations runs, failed when a top-level invocation
    (one that nothing else ran) failed, else completed; `duration_seconds` runs from its first
    start to `ended_at`, the last finish of its invocations (None while running or unknown).
    `agents` and `skills` are the names it used, in code point order.
    """

    task_id: str
    status: Status
    duration_seconds: float | None
    invocations: int
    completed: int
    failed: int
    running: int
    total_cost_usd: float | None
    unpriced_invocations: int
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_tokens: int | None
    cache_read_tokens: int | None
    total_tokens: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    agents: tuple[str, ...]
    skills: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Page(Generic[T]):
    """One page of a listing; pass `next_cursor` as `after` to get the next one."""

    items: tuple[T, ...]
    next_cursor: str | None
    has_next: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_next", self.next_cursor is not None)
