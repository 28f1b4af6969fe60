"""A running invocation counts what it has spent so far in every aggregate, exactly once, and
its finished values once it is over: progress events from several producers, in any order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import Status, UsageEvent
from claude_api.models import queries
from claude_api.models.filters import Period, UsageFilter
from tests.factories import BASE_TIME, add_events, make_event


@dataclass(frozen=True)
class Seen:
    """What an aggregate says of the invocations: count, running, cost and tokens."""

    invocations: int
    running: int
    cost: float | None
    input_tokens: int
    output_tokens: int


def expected(*rows: dict[str, float | int]) -> Seen:
    """What the aggregates must say of `rows` (each a row's values as the test built them)."""
    return Seen(
        invocations=len(rows),
        running=sum(1 for row in rows if row["running"]),
        cost=pytest.approx(sum(row["cost_usd"] for row in rows)),
        input_tokens=sum(int(row["input_tokens"]) for row in rows),
        output_tokens=sum(int(row["output_tokens"]) for row in rows),
    )


def aggregates(engine: Engine) -> list[Seen]:
    """The same invocations as the query layer's stats and the month's report count them."""
    with Session(engine) as session:
        stats = queries.usage_stats(session, filter=UsageFilter(name="code-reviewer"))
        report = queries.usage_report(session, period=Period.MONTH, on=BASE_TIME.date())
    return [
        Seen(
            invocations=totals.invocations,
            running=totals.running,
            cost=totals.total_cost_usd,
            input_tokens=totals.input_tokens,
            output_tokens=totals.output_tokens,
        )
        for totals in (stats, report.totals, *report.agents)
    ]


def spent(event: UsageEvent, *, running: bool) -> dict[str, float | int]:
    return {
        "running": running,
        "cost_usd": event.cost_usd or 0.0,
        "input_tokens": event.input_tokens or 0,
        "output_tokens": event.output_tokens or 0,
    }


def test_a_running_invocation_counts_its_spend_so_far_once(engine: Engine) -> None:
    done = make_event(cost_usd=0.25, input_tokens=1_000, output_tokens=200)
    start = make_event(status=Status.RUNNING, timestamp=BASE_TIME.replace(hour=12))
    add_events(engine, done, start)

    def so_far(**spend: float | int) -> UsageEvent:
        return make_event(**{**start.model_dump(), **spend})

    first = so_far(cost_usd=0.10, input_tokens=300, output_tokens=40)
    second = so_far(cost_usd=0.30, input_tokens=900, output_tokens=120)
    stale = so_far(cost_usd=0.20, input_tokens=600, output_tokens=80)  # sent before `second`
    finished = spent(done, running=False)

    add_events(engine, first)
    assert aggregates(engine) == [expected(finished, spent(first, running=True))] * 3
    add_events(engine, second)
    assert aggregates(engine) == [expected(finished, spent(second, running=True))] * 3
    add_events(engine, stale)  # arrives last: lowers nothing
    assert aggregates(engine) == [expected(finished, spent(second, running=True))] * 3

    finish = start.finish(Status.COMPLETED, cost_usd=0.35, input_tokens=950, output_tokens=130)
    add_events(engine, finish)
    assert aggregates(engine) == [expected(finished, spent(finish, running=False))] * 3
    add_events(engine, stale, second, finish)  # late and repeated: counted once still
    assert aggregates(engine) == [expected(finished, spent(finish, running=False))] * 3
