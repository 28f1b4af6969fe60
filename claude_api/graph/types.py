"""Strawberry output types of the query layer's results.

A type marked `reads(result)` resolves the query layer's `result` objects as they are: its
fields are read from theirs by name, so no copy is made of a result, however many rows it has
(`tests/test_graph_types.py` checks that every field exists on the result).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar
from uuid import UUID

import strawberry

from claude_api.events import CostSource as CostSourceEnum
from claude_api.events import Kind as KindEnum
from claude_api.events import Status as StatusEnum
from claude_api.graph.scalars import Long
from claude_api.models import filters, results
from claude_api.models.queries import durations, purged

T = TypeVar("T")

Kind = strawberry.enum(KindEnum, description="What was invoked: an agent or a skill.")
Status = strawberry.enum(StatusEnum, description="Where an invocation stands.")
CostSource = strawberry.enum(
    CostSourceEnum,
    description="Where an invocation's cost came from: reported by its runner, computed from its "
    "model and tokens, or unpriced (tokens known, the model has no price).",
)
Period = strawberry.enum(
    filters.Period,
    description="A calendar period; weeks are ISO weeks, starting on Monday; an hour runs from "
    "one local hh:00 to the next (histories only).",
)
LeaderboardMetric = strawberry.enum(
    filters.LeaderboardMetric, description="What a leaderboard ranks by, highest first."
)


def reads(result: type) -> Callable[[type[T]], type[T]]:
    """Marks a GraphQL object type as answered by the query layer's `result` objects too (its
    own instances still resolve), to be applied under `@strawberry.type`."""

    def mark(cls: type[T]) -> type[T]:
        accepted = (cls, result)
        cls.is_type_of = staticmethod(lambda obj, _info: isinstance(obj, accepted))  # type: ignore[attr-defined]
        cls.__result_type__ = result  # type: ignore[attr-defined]
        return cls

    return mark


@strawberry.interface(description="Counts and sums over a set of invocations.")
class Totals:
    invocations: Long = strawberry.field(description="Invocations started, running ones included.")
    completed: Long
    failed: Long
    running: Long
    success_rate: float | None = strawberry.field(
        description="completed / (completed + failed); null without a finished invocation."
    )
    total_cost_usd: float | None = strawberry.field(
        description="Cost in USD of the invocations that report one, each exclusive of its "
        "children; null (unknown) when none of them does, 0 when there are no invocations. "
        "Partial when unpricedInvocations is above 0."
    )
    unpriced_invocations: Long = strawberry.field(
        description="Invocations without a cost (unpriced model, no tokens, or still running), "
        "left out of totalCostUsd."
    )
    avg_cost_usd: float | None = strawberry.field(
        description="Average cost over the invocations that report one."
    )
    avg_duration_seconds: float | None = strawberry.field(
        description="Average duration of finished invocations."
    )
    input_tokens: Long | None = strawberry.field(
        description="Input tokens, cache tokens not included; each token count is null "
        "(unknown) when there are invocations and none of them reports it."
    )
    output_tokens: Long | None
    cache_creation_tokens: Long | None = strawberry.field(
        description="Tokens written to the prompt cache (cache write)."
    )
    cache_read_tokens: Long | None = strawberry.field(
        description="Tokens read from the prompt cache."
    )
    total_tokens: Long | None = strawberry.field(
        description="Input + output + cache creation + cache read tokens, of those known; null "
        "when none is."
    )


@strawberry.type(description="How many failures of one agent or skill ended with one message.")
@reads(results.ErrorCount)
class ErrorCount:
    kind: Kind
    name: str
    error_message: str
    count: Long


@strawberry.type(description="Statistics of one agent or skill over the filter's invocations.")
@reads(results.UsageStats)
class UsageStats(Totals):
    kind: Kind | None = strawberry.field(description="Null when both agents and skills count.")
    name: str | None
    avg_input_tokens: float | None
    avg_output_tokens: float | None
    p50_duration_seconds: float | None = strawberry.field(
        description="Median duration of finished invocations (nearest rank; within 1% of the "
        "exact value when computed from the rollups' DDSketch bins)."
    )
    p95_duration_seconds: float | None = strawberry.field(
        description="95th percentile duration of finished invocations (nearest rank, within 1%)."
    )
    p99_duration_seconds: float | None = strawberry.field(
        description="99th percentile duration of finished invocations (nearest rank, within 1%)."
    )
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    top_errors: list[ErrorCount] = strawberry.field(
        description="The most frequent error messages of its failures."
    )


@strawberry.type(description="One page of a listing; pass nextCursor as `after` for the next.")
@reads(results.Page)
class UsageStatsPage:
    items: list[UsageStats]
    next_cursor: str | None
    has_next: bool


@strawberry.type(description="One place on a leaderboard; ties are broken by name.")
@reads(results.LeaderboardEntry)
class LeaderboardEntry:
    rank: int
    kind: Kind
    name: str
    metric: LeaderboardMetric
    value: float = strawberry.field(
        description="The metric's value; a token count is exact up to 2^53."
    )
    invocations: Long
    unpriced_invocations: Long = strawberry.field(
        description="Its invocations without a cost, left out of a cost metric."
    )


@strawberry.type(description="One local hour, calendar day, week or month of a history.")
@reads(results.HistoryBucket)
class HistoryBucket(Totals):
    period_start: date = strawberry.field(
        description="The bucket's first local date (an hour's: the date it falls on)."
    )
    start_at: datetime = strawberry.field(description="First instant counted (UTC).")
    end_at: datetime = strawberry.field(description="End of the bucket, exclusive (UTC).")


@strawberry.type(description="Counts and sums over a range: a report's period, a history.")
@reads(results.UsageTotals)
class UsageTotals(Totals):
    pass


@strawberry.type(
    description="A history's buckets as columns: each field lists that field of every bucket, "
    "in order (entry i is bucket i's), null where the bucket's is. The same figures as "
    "`buckets` in a compact form, for charts of many points."
)
@reads(results.HistorySeries)
class HistorySeries:
    period_start: list[date]
    start_at: list[datetime]
    end_at: list[datetime]
    invocations: list[Long]
    completed: list[Long]
    failed: list[Long]
    running: list[Long]
    success_rate: list[float | None]
    total_cost_usd: list[float | None]
    unpriced_invocations: list[Long]
    avg_cost_usd: list[float | None]
    avg_duration_seconds: list[float | None]
    input_tokens: list[Long | None]
    output_tokens: list[Long | None]
    cache_creation_tokens: list[Long | None]
    cache_read_tokens: list[Long | None]
    total_tokens: list[Long | None]


@strawberry.type(description="Invocations per calendar bucket, empty buckets included.")
@reads(results.History)
class History:
    kind: Kind | None
    name: str | None
    period: Period
    tz: str
    start_at: datetime
    end_at: datetime
    buckets: list[HistoryBucket]
    totals: UsageTotals = strawberry.field(description="The whole range: all its buckets.")
    series: HistorySeries = strawberry.field(
        description="The buckets as columns, one list per field: what a chart of many points "
        "reads, without an object per bucket."
    )


@strawberry.type(description="One agent or skill in a report.")
@reads(results.ReportRow)
class ReportRow(Totals):
    kind: Kind
    name: str


@strawberry.type(description="The invocations of one model.")
@reads(results.ModelUsage)
class ModelUsage(Totals):
    model: str | None = strawberry.field(description="Null for invocations that name no model.")


@strawberry.type(description="The invocations of one project.")
@reads(results.ProjectUsage)
class ProjectUsage(Totals):
    project_id: str | None = strawberry.field(
        description="Null for invocations outside any project."
    )


@strawberry.type(
    description="Invocations per model, most costly first (unknown cost last), then most run."
)
class ModelBreakdown:
    models: list[ModelUsage]
    totals: UsageTotals = strawberry.field(description="Every model together.")

    @classmethod
    def of(cls, breakdown: results.Breakdown) -> ModelBreakdown:
        return cls(models=list(breakdown.rows), totals=breakdown.totals)


@strawberry.type(
    description="Finished invocations whose duration d is minSeconds <= d < maxSeconds."
)
@reads(durations.DurationBucket)
class DurationBucket:
    min_seconds: float
    max_seconds: float | None = strawberry.field(description="Null: no upper bound.")
    count: Long


@strawberry.type(
    description="How long finished invocations took: counts per bucket of a 1-2-5 series of "
    "seconds, from the shortest to the longest bucket with a count."
)
@reads(durations.DurationHistogram)
class DurationHistogram:
    buckets: list[DurationBucket]
    measured: Long = strawberry.field(description="Durations counted: finished, with a duration.")
    exact: bool = strawberry.field(
        description="Whether every duration was placed exactly; otherwise those from the "
        "rollups' sketch bins are placed within 1%, so one close to an edge may be counted in "
        "the bucket beside it."
    )


@strawberry.type(
    description="Invocations per project, most costly first (unknown cost last), then most run."
)
class ProjectBreakdown:
    projects: list[ProjectUsage]
    totals: UsageTotals = strawberry.field(description="Every project together.")

    @classmethod
    def of(cls, breakdown: results.Breakdown) -> ProjectBreakdown:
        return cls(projects=list(breakdown.rows), totals=breakdown.totals)


@strawberry.type(description="A period against the previous one: delta and delta / previous.")
@reads(results.PeriodChange)
class PeriodChange:
    invocations_delta: Long
    invocations_relative: float | None
    total_cost_usd_delta: float | None = strawberry.field(
        description="Null when either period's total cost is unknown."
    )
    total_cost_usd_relative: float | None
    success_rate_delta: float | None
    success_rate_relative: float | None


@strawberry.type(description="A day, week or month and how it compares with the previous one.")
@reads(results.Report)
class Report:
    period: Period
    tz: str
    period_start: date
    start_at: datetime
    end_at: datetime
    so_far: bool = strawberry.field(
        description="The period is not over: totals cover startAt to untilAt (now), and "
        "previousTotals the same stretch of the period before."
    )
    until_at: datetime = strawberry.field(description="The end of what totals cover.")
    previous_start_at: datetime = strawberry.field(
        description="The start of what previousTotals cover."
    )
    previous_end_at: datetime = strawberry.field(
        description="The end of what previousTotals cover: the same day and time of day as "
        "untilAt, one period back (clipped to that period's end)."
    )
    empty_period_start: date | None = strawberry.field(
        description="Set when the current period had no invocation yet and the report is of "
        "the latest period with some instead: the first date of the empty current period."
    )
    totals: UsageTotals
    previous_totals: UsageTotals
    change: PeriodChange
    agents: list[ReportRow]
    skills: list[ReportRow]
    top_failures: list[ErrorCount]


@strawberry.type(description="One invocation within a task.")
@reads(results.TaskUsage)
class Invocation:
    kind: Kind
    name: str
    event_id: UUID
    parent_id: UUID | None = strawberry.field(
        description="The invocation that ran this one: a skill's agent, a subagent's task."
    )
    project_id: str | None
    status: Status
    timestamp: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    cost_usd: float | None = strawberry.field(description="Null when unknown (see costSource).")
    cost_source: CostSource | None
    input_tokens: Long | None
    output_tokens: Long | None
    cache_creation_tokens: Long | None
    cache_read_tokens: Long | None
    model: str | None
    error_message: str | None
    source: str = strawberry.field(
        description="Who recorded it: executor, transcript import, Claude Code hook, HTTP "
        "ingest, or a plugin."
    )


@strawberry.type(description="One invocation with the task that ran it, as `invocations` lists it.")
@reads(results.InvocationRecord)
class InvocationRecord(Invocation):
    task_id: str


@strawberry.type(description="One page of invocations; pass nextCursor as `after` for the next.")
@reads(results.Page)
class InvocationPage:
    items: list[InvocationRecord]
    next_cursor: str | None
    has_next: bool


@strawberry.type(description="Invocations whose raw rows were purged and that the rollups count.")
@reads(purged.PurgedInvocations)
class PurgedInvocations:
    before: datetime = strawberry.field(
        description="The raw rows of invocations that started before this instant were purged."
    )
    invocations: Long = strawberry.field(
        description="How many of them match: finished ones, over the range's whole UTC hours."
    )


@strawberry.type(description="One invocation within a task, with the cost of its subtree.")
@reads(results.TaskInvocation)
class TaskInvocation(Invocation):
    total_cost_usd: float | None = strawberry.field(
        description="The costs reported by this invocation and everything it ran, "
        "transitively; null when none of them reports one."
    )
    unpriced_invocations: Long = strawberry.field(
        description="Invocations of the subtree (this one included) without a cost."
    )


@strawberry.type(description="A whole task over all its invocations, with the names it used.")
@reads(results.TaskSummary)
class TaskSummary:
    task_id: str
    status: Status = strawberry.field(
        description="Running while any invocation runs; failed when a top-level invocation "
        "(one that nothing else ran) failed; else completed."
    )
    duration_seconds: float | None = strawberry.field(
        description="From its first start to endedAt; null while running or unknown."
    )
    invocations: Long
    completed: Long
    failed: Long
    running: Long
    total_cost_usd: float | None = strawberry.field(
        description="As in Totals: null when none of its invocations reports a cost."
    )
    unpriced_invocations: Long
    input_tokens: Long | None
    output_tokens: Long | None
    cache_creation_tokens: Long | None
    cache_read_tokens: Long | None
    total_tokens: Long | None
    first_seen_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None = strawberry.field(
        description="The last finish of its invocations; null while running or unknown."
    )
    agents: list[str] = strawberry.field(description="The agents it ran, in code point order.")
    skills: list[str] = strawberry.field(description="The skills it used, in code point order.")


@strawberry.type(description="A task: its summary and every agent and skill invocation it made.")
class Task:
    id: str
    summary: TaskSummary
    invocations: list[TaskInvocation]


@strawberry.type(description="One page of tasks, most recent first.")
@reads(results.Page)
class TaskSummaryPage:
    items: list[TaskSummary]
    next_cursor: str | None
    has_next: bool


@strawberry.type(description="What a recordUsage mutation stored.")
class RecordResult:
    received: Long = strawberry.field(description="Events accepted; repeated ids count once.")
