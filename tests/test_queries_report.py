"""usage_report: a day, week or month in a time zone, its rows and failures, and the change
against the previous period."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import InvalidFilter
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import Period, UsageFilter
from claude_api.models.queries import usage_report
from claude_api.models.results import Report
from tests import expected
from tests.factories import add_events, make_event

PARIS = "Europe/Paris"


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def report(engine: Engine, period: Period | str, **arguments: object) -> Report:
    with Session(engine) as session:
        return usage_report(session, period=period, **arguments)


def week_of_events() -> tuple[list[UsageEvent], list[UsageEvent]]:
    """Events of the ISO week from Monday 2026-05-04 and of the week before it."""
    this_week = [
        make_event(name="reviewer", timestamp=utc(2026, 5, 4), cost_usd=0.5),
        make_event(
            name="reviewer",
            timestamp=utc(2026, 5, 6, 9),
            status=Status.FAILED,
            error_message="timeout",
            cost_usd=0.25,
        ),
        make_event(
            name="reviewer",
            timestamp=utc(2026, 5, 7),
            status=Status.FAILED,
            error_message="timeout",
        ),
        make_event(name="planner", timestamp=utc(2026, 5, 8), status=Status.RUNNING),
        make_event(name="planner", timestamp=utc(2026, 5, 10, 23, 59), duration_seconds=30.0),
        make_event(
            kind="skill",
            name="pdf",
            timestamp=utc(2026, 5, 9),
            status=Status.FAILED,
            error_message="bad file",
            cost_usd=0.125,
        ),
        make_event(kind="skill", name="xlsx", timestamp=utc(2026, 5, 5)),
        make_event(kind="skill", name="csv", timestamp=utc(2026, 5, 5)),
    ]
    last_week = [
        make_event(name="reviewer", timestamp=utc(2026, 4, 27), cost_usd=1.0),
        make_event(name="reviewer", timestamp=utc(2026, 5, 3, 23, 59, 59), cost_usd=1.0),
        make_event(name="planner", timestamp=utc(2026, 4, 30), status=Status.FAILED),
    ]
    return this_week, last_week


def test_week_report(engine: Engine) -> None:
    this_week, last_week = week_of_events()
    add_events(engine, *this_week, *last_week, make_event(timestamp=utc(2026, 5, 11)))
    result = report(engine, Period.WEEK, on=date(2026, 5, 7), top_failures=2)

    assert (result.period, result.tz, result.period_start) == (Period.WEEK, "UTC", date(2026, 5, 4))
    assert (result.start_at, result.end_at) == (utc(2026, 5, 4), utc(2026, 5, 11))
    expected.assert_totals(result.totals, this_week)
    expected.assert_totals(result.previous_totals, last_week)

    groups: dict[tuple[Kind, str], list[UsageEvent]] = {}
    for event in this_week:
        groups.setdefault((event.kind, event.name), []).append(event)
    order = sorted(groups, key=lambda key: (-len(groups[key]), key[1], key[0].value))
    assert [(r.kind, r.name) for r in result.agents + result.skills] == [
        key for kind in Kind for key in order if key[0] is kind
    ]
    for row in result.agents + result.skills:
        expected.assert_totals(row, groups[row.kind, row.name])

    assert [(f.kind.value, f.name, f.error_message, f.count) for f in result.top_failures] == (
        expected.top_errors(this_week, 2)
    )

    now, before = expected.totals(this_week), expected.totals(last_week)
    change = result.change
    assert change.invocations_delta == now["invocations"] - before["invocations"]
    assert change.invocations_relative == pytest.approx(
        (now["invocations"] - before["invocations"]) / before["invocations"]
    )
    cost_delta = now["total_cost_usd"] - before["total_cost_usd"]
    assert change.total_cost_usd_delta == pytest.approx(cost_delta)
    assert change.total_cost_usd_relative == pytest.approx(cost_delta / before["total_cost_usd"])
    rate_delta = now["success_rate"] - before["success_rate"]
    assert change.success_rate_delta == pytest.approx(rate_delta)
    assert change.success_rate_relative == pytest.approx(rate_delta / before["success_rate"])


def test_relative_change_is_none_after_an_empty_period(engine: Engine) -> None:
    events = [make_event(timestamp=utc(2026, 5, 1, 12)), make_event(timestamp=utc(2026, 5, 1, 13))]
    add_events(engine, *events)
    result = report(engine, "day", on=date(2026, 5, 1))
    expected.assert_totals(result.previous_totals, [])
    change = result.change
    assert (change.invocations_delta, change.invocations_relative) == (2, None)
    assert change.total_cost_usd_relative is None
    assert (change.success_rate_delta, change.success_rate_relative) == (None, None)


def test_success_rate_falling_to_zero(engine: Engine) -> None:
    add_events(
        engine,
        make_event(timestamp=utc(2026, 4, 30, 12)),
        make_event(timestamp=utc(2026, 5, 1, 12), status=Status.FAILED),
    )
    change = report(engine, Period.DAY, on=date(2026, 5, 1)).change
    assert (change.success_rate_delta, change.success_rate_relative) == (-1.0, -1.0)


def test_report_defaults_to_the_period_holding_now(engine: Engine) -> None:
    add_events(
        engine, make_event(timestamp=utc(2026, 3, 2)), make_event(timestamp=utc(2026, 2, 27))
    )
    result = report(engine, Period.MONTH, now=utc(2026, 3, 31, 23))
    assert result.period_start == date(2026, 3, 1)
    assert (result.totals.invocations, result.previous_totals.invocations) == (1, 1)
    assert result.end_at - result.start_at == timedelta(days=31)


def test_report_periods_are_local_to_the_time_zone(engine: Engine) -> None:
    late = make_event(timestamp=utc(2026, 4, 30, 23, 30))  # 01:30 on May 1st in Paris
    add_events(engine, late)
    paris = report(engine, Period.DAY, on=date(2026, 5, 1), filter=UsageFilter(tz=PARIS))
    in_utc = report(engine, Period.DAY, on=date(2026, 5, 1))
    assert (paris.totals.invocations, paris.previous_totals.invocations) == (1, 0)
    assert (in_utc.totals.invocations, in_utc.previous_totals.invocations) == (0, 1)
    midnight = datetime.combine(date(2026, 5, 1), time(), tzinfo=ZoneInfo(PARIS))
    assert paris.start_at == midnight.astimezone(UTC)
    # A datetime as `on` means its local date in the filter's zone.
    assert report(engine, "day", on=late.timestamp, filter=UsageFilter(tz=PARIS)).totals == (
        paris.totals
    )


def test_report_narrowed_by_the_filter(engine: Engine) -> None:
    this_week, last_week = week_of_events()
    add_events(engine, *this_week, *last_week)
    agents = report(engine, "week", on=date(2026, 5, 4), filter=UsageFilter(kind="agent"))
    expected.assert_totals(agents.totals, [e for e in this_week if e.kind is Kind.AGENT])
    assert agents.skills == ()
    assert {f.kind for f in agents.top_failures} == {Kind.AGENT}


def test_report_of_an_empty_database(engine: Engine) -> None:
    result = report(engine, Period.WEEK, on=date(2026, 5, 4))
    expected.assert_totals(result.totals, [])
    assert (result.agents, result.skills, result.top_failures) == ((), (), ())


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"period": "year"}, "period"),
        ({"filter": UsageFilter(since=utc(2026, 5, 1))}, "since"),
        ({"filter": UsageFilter(until=utc(2026, 5, 1))}, "since"),
        ({"top_failures": -1}, "top_failures"),
        ({"on": datetime(2026, 5, 1, 12)}, "on"),
        ({"now": datetime(2026, 5, 1, 12)}, "now"),
    ],
)
def test_report_rejects_bad_arguments(engine: Engine, arguments: dict, field: str) -> None:
    arguments = {"period": Period.DAY, **arguments}
    with pytest.raises(InvalidFilter) as error:
        report(engine, **arguments)
    assert error.value.field == field
