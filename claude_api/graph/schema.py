"""The GraphQL schema: thin resolvers that call the query layer and the tracker, nothing more.

They return the query layer's results as they are (`types.reads`); the one thing a resolver
reads of the query beyond its arguments is whether it selects `topErrors`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, Protocol, TypeVar

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from claude_api.access import Principal
from claude_api.errors import EventConflict
from claude_api.events import Kind, parse_events
from claude_api.graph import types
from claude_api.graph.errors import log_errors
from claude_api.graph.guardrails import GuardrailMutations, GuardrailQueries
from claude_api.graph.http import schema_extensions
from claude_api.graph.inputs import UsageEventInput, UsageFilterInput, to_filter
from claude_api.graph.scalars import SCALARS, Long
from claude_api.models import queries
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.models.gateway import Gateway, mark_uncacheable
from claude_api.models.keys import Scope
from claude_api.models.queries.durations import duration_histogram
from claude_api.models.queries.histories import usage_by_period_per_name
from claude_api.models.queries.purged import count_purged_invocations
from claude_api.models.queries.stats import DEFAULT_TOP_ERRORS

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 50


# The query layer's argument -> the GraphQL argument that sets it, where their names differ.
PAGE_ARGUMENTS = {"limit": "first"}


class GraphContext(Protocol):
    """What resolvers need from the app: the read gateway, the deadline of the request's reads,
    the tracker and the caller."""

    @property
    def gateway(self) -> Gateway: ...

    @property
    def deadline(self) -> float | None: ...

    @property
    def tracker(self) -> Any: ...

    @property
    def principal(self) -> Principal: ...


async def _query(
    info: Info[GraphContext, None],
    function: Callable[..., T],
    /,
    *,
    arguments: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> T:
    """`Gateway.answer`: a query-layer function for the caller; `arguments` renames the query
    layer's arguments in its errors to the GraphQL ones."""
    context = info.context
    return await context.gateway.answer(
        context.principal, function, deadline=context.deadline, names=arguments, **kwargs
    )


def _asks(selections: Iterable[Selection], *path: str) -> bool:
    """Whether `selections` ask for the field at `path` (its GraphQL names, outermost first),
    through fragments; a field a directive may skip counts as asked."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name != path[0]:
                continue
            if len(path) == 1 or _asks(selection.selections, *path[1:]):
                return True
        elif _asks(selection.selections, *path):
            return True
    return False


def _top_errors(info: Info, *path: str) -> int:
    """How many top errors a stats field computes: none unless its `topErrors` is asked, so a
    page that shows no errors does not pay for counting them. Selections of the field under
    the same response key are merged into one field, so each of them is looked at."""
    asked = any(_asks(field.selections, *path) for field in info.selected_fields)
    return DEFAULT_TOP_ERRORS if asked else 0


async def _stats(
    info: Info, kind: Kind | None, name: str | None, filter: UsageFilterInput | None
) -> Any:
    scope = to_filter(filter, kind=kind, name=name)
    return await _query(
        info, queries.usage_stats, filter=scope, top_errors=_top_errors(info, "topErrors")
    )


async def _stats_page(
    info: Info, kind: Kind, filter: UsageFilterInput | None, first: int, after: str | None
) -> types.UsageStatsPage:
    scope = to_filter(filter, kind=kind)
    return await _query(
        info,
        queries.stats_by_name,
        arguments=PAGE_ARGUMENTS,
        filter=scope,
        limit=first,
        after=after,
        top_errors=_top_errors(info, "items", "topErrors"),
    )


@strawberry.type(description="Questions about agents, skills, tasks and budgets.")
class Query(GuardrailQueries):
    @strawberry.field(description="Statistics of one agent; null (with an error) if unknown.")
    async def agent(
        self, info: Info, name: str, filter: UsageFilterInput | None = None
    ) -> types.UsageStats | None:
        return await _stats(info, Kind.AGENT, name, filter)

    @strawberry.field(description="Statistics of one skill; null (with an error) if unknown.")
    async def skill(
        self, info: Info, name: str, filter: UsageFilterInput | None = None
    ) -> types.UsageStats | None:
        return await _stats(info, Kind.SKILL, name, filter)

    @strawberry.field(
        description="Statistics of every invocation matching the filter, agents and skills "
        "together unless kind is given."
    )
    async def usage(
        self, info: Info, kind: types.Kind | None = None, filter: UsageFilterInput | None = None
    ) -> types.UsageStats:
        return await _stats(info, kind, None, filter)

    @strawberry.field(description="Statistics of every agent, by name.")
    async def agents(
        self,
        info: Info,
        filter: UsageFilterInput | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> types.UsageStatsPage:
        return await _stats_page(info, Kind.AGENT, filter, first, after)

    @strawberry.field(description="Statistics of every skill, by name.")
    async def skills(
        self,
        info: Info,
        filter: UsageFilterInput | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> types.UsageStatsPage:
        return await _stats_page(info, Kind.SKILL, filter, first, after)

    @strawberry.field(
        description="The top agents or skills (both when kind is null) by a metric; only those "
        "with at least minInvocations take part."
    )
    async def leaderboard(
        self,
        info: Info,
        kind: types.Kind | None = None,
        by: types.LeaderboardMetric = LeaderboardMetric.USAGE,
        limit: int = 10,
        min_invocations: int = 1,
        filter: UsageFilterInput | None = None,
    ) -> list[types.LeaderboardEntry]:
        return await _query(
            info,
            queries.leaderboard,
            filter=to_filter(filter, kind=kind),
            metric=by,
            limit=limit,
            min_invocations=min_invocations,
        )

    @strawberry.field(
        description="Invocations of one agent or skill per local hour, day, week or month, empty "
        "buckets included (default range: the last 24 hours, 30 days, 12 weeks or 12 months); "
        "without a name, of every agent or skill (both when kind is null)."
    )
    async def history(
        self,
        info: Info,
        kind: types.Kind | None = None,
        name: str | None = None,
        period: types.Period = Period.DAY,
        filter: UsageFilterInput | None = None,
    ) -> types.History | None:
        scope = to_filter(filter, kind=kind, name=name)
        return await _query(info, queries.usage_by_period, filter=scope, period=period)

    @strawberry.field(
        description="The histories of several agents or skills of one kind at once, in the order "
        "of names (at most 100), each as `history` gives it; a name without invocations has "
        "empty buckets rather than an error."
    )
    async def histories(
        self,
        info: Info,
        kind: types.Kind,
        names: list[str],
        period: types.Period = Period.DAY,
        filter: UsageFilterInput | None = None,
    ) -> list[types.History]:
        scope = to_filter(filter, kind=kind)
        return await _query(
            info,
            usage_by_period_per_name,
            arguments={"named": "names"},
            filter=scope,
            period=period,
            named=tuple(names),
        )

    @strawberry.field(
        description="Invocations per model, with the totals of them all (both kinds when kind "
        "is null); with name, of that agent or skill only."
    )
    async def models(
        self,
        info: Info,
        kind: types.Kind | None = None,
        filter: UsageFilterInput | None = None,
        name: str | None = None,
    ) -> types.ModelBreakdown:
        scope = to_filter(filter, kind=kind, name=name)
        return types.ModelBreakdown.of(await _query(info, queries.usage_by_model, filter=scope))

    @strawberry.field(
        description="How long the finished invocations matching took, as counts per duration "
        "bucket; with name (and kind), of that agent or skill."
    )
    async def duration_histogram(
        self,
        info: Info,
        kind: types.Kind | None = None,
        name: str | None = None,
        filter: UsageFilterInput | None = None,
    ) -> types.DurationHistogram:
        scope = to_filter(filter, kind=kind, name=name)
        return await _query(info, duration_histogram, filter=scope)

    @strawberry.field(
        description="Invocations per project, with the totals of them all (both kinds when "
        "kind is null); a key bound to a project sees that project only."
    )
    async def projects(
        self, info: Info, kind: types.Kind | None = None, filter: UsageFilterInput | None = None
    ) -> types.ProjectBreakdown:
        scope = to_filter(filter, kind=kind)
        return types.ProjectBreakdown.of(await _query(info, queries.usage_by_project, filter=scope))

    @strawberry.field(
        description="A day, week or month (the one holding `date`; without one, the current "
        "period so far, or the latest period with invocations when the current one has none "
        "yet) in the filter's time zone, against the same stretch of the one before."
    )
    async def report(
        self,
        info: Info,
        period: types.Period = Period.DAY,
        date: date | None = None,
        kind: types.Kind | None = None,
        filter: UsageFilterInput | None = None,
    ) -> types.Report:
        return await _query(
            info, queries.usage_report, period=period, on=date, filter=to_filter(filter, kind=kind)
        )

    @strawberry.field(description="Every agent and skill invocation of one task; null if unknown.")
    async def task(self, info: Info, id: str) -> types.Task | None:
        usage = await _query(info, queries.list_task_usage, task_id=id, project_id=None)
        page = await _query(info, queries.list_tasks, filter=UsageFilter(task_id=id), limit=1)
        return types.Task(
            id=id,
            summary=page.items[0],
            invocations=list(usage),
        )

    @strawberry.field(
        description="Tasks, most recent first; with name (and kind), the tasks that used it."
    )
    async def tasks(
        self,
        info: Info,
        kind: types.Kind | None = None,
        name: str | None = None,
        filter: UsageFilterInput | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> types.TaskSummaryPage:
        return await _query(
            info,
            queries.list_tasks,
            arguments=PAGE_ARGUMENTS,
            filter=to_filter(filter, kind=kind, name=name),
            limit=first,
            after=after,
        )

    @strawberry.field(
        description="Every invocation matching, agents and skills alike unless kind is given, in "
        "start order (ties: agents first, then event id), one page at a time."
    )
    async def invocations(
        self,
        info: Info,
        kind: types.Kind | None = None,
        name: str | None = None,
        filter: UsageFilterInput | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> types.InvocationPage:
        return await _query(
            info,
            queries.list_invocations,
            arguments=PAGE_ARGUMENTS,
            filter=to_filter(filter, kind=kind, name=name),
            limit=first,
            after=after,
        )

    @strawberry.field(description="How many invocations `invocations` lists for these arguments.")
    async def invocation_count(
        self,
        info: Info,
        kind: types.Kind | None = None,
        name: str | None = None,
        filter: UsageFilterInput | None = None,
    ) -> Long:
        scope = to_filter(filter, kind=kind, name=name)
        return Long(await _query(info, queries.count_invocations, filter=scope))

    @strawberry.field(
        description="How many invocations matching these arguments the rollups count whose raw "
        "rows were purged, so that `invocations` cannot list them; null when no raw row of the "
        "range was purged."
    )
    async def purged_invocations(
        self,
        info: Info,
        kind: types.Kind | None = None,
        name: str | None = None,
        filter: UsageFilterInput | None = None,
    ) -> types.PurgedInvocations | None:
        scope = to_filter(filter, kind=kind, name=name)
        return await _query(info, count_purged_invocations, filter=scope)

    @strawberry.field(
        description="Every agent or skill name ever recorded (both when kind is null), in code "
        "point order."
    )
    async def names(self, info: Info, kind: types.Kind | None = None) -> list[str]:
        return await _query(info, queries.list_names, kind=kind, project_id=None)


async def _record(
    info: Info[GraphContext, None], items: list[dict[str, Any]], location: str
) -> types.RecordResult:
    """Validate and store events for a caller allowed to write, in its project only."""
    mark_uncacheable()
    principal = info.context.principal
    principal.require(Scope.WRITE)
    events = principal.claim(parse_events(items, location=location), location)
    try:
        await info.context.gateway.run(lambda: info.context.tracker.record(events))
    except EventConflict as error:
        raise error.at(location) from None
    return types.RecordResult(received=len(events))


@strawberry.type(
    description="Usage events from remote runners, stored by the same recorder; budgets and "
    "alert rules."
)
class Mutation(GuardrailMutations):
    @strawberry.mutation(description="Record one usage event.")
    async def record_usage(self, info: Info, event: UsageEventInput) -> types.RecordResult:
        return await _record(info, [event.to_wire()], "event")

    @strawberry.mutation(
        description="Record a batch of events: one invalid event rejects the batch, nothing "
        "stored, every problem listed in the error's extensions."
    )
    async def record_usage_batch(
        self, info: Info, events: list[UsageEventInput]
    ) -> types.RecordResult:
        return await _record(info, [e.to_wire() for e in events], "events")


class AnalyticsSchema(strawberry.Schema):
    """The schema with the project's error handling: client errors logged quietly."""

    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        log_errors(errors, execution_context)


def build_schema() -> strawberry.Schema:
    """The GraphQL schema, with parse/validation caches and domain error codes."""
    return AnalyticsSchema(
        query=Query,
        mutation=Mutation,
        extensions=schema_extensions(),
        config=StrawberryConfig(scalar_map=SCALARS),
    )


def export_sdl() -> str:
    """The schema in SDL, as committed in `schema.graphql`."""
    return build_schema().as_str() + "\n"
