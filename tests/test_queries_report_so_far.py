"""usage_report compares like with like: a period not over is reported so far against the
same stretch of the period before; a report without a date falls back to the latest period
with invocations when the current one has none yet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.models.filters import Period, UsageFilter
from claude_api.models.queries import usage_report
from tests import expected
from tests.factories import add_events, make_event


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def test_month_so_far_against_the_same_days_of_the_month_before(engine: Engine) -> None:
    now = utc(2026, 12, 7, 10)
    this_month = [make_event(timestamp=utc(2026, 12, day, 9)) for day in (1, 3, 7)]
    # Of November, only what started before 7 Nov 10:00 is like for like.
    same_days = [
        make_event(timestamp=utc(2026, 11, 1), cost_usd=1.0),
        make_event(timestamp=utc(2026, 11, 4, 12), cost_usd=2.0),
        make_event(timestamp=utc(2026, 11, 7, 9, 59), cost_usd=4.0),
    ]
    rest_of_november = [
        make_event(timestamp=utc(2026, 11, 7, 10), cost_usd=8.0),
        make_event(timestamp=utc(2026, 11, 20), cost_usd=16.0),
        make_event(timestamp=utc(2026, 11, 30, 23), cost_usd=32.0),
    ]
    add_events(engine, *this_month, *same_days, *rest_of_november)
    with Session(engine) as session:
        result = usage_report(session, period=Period.MONTH, now=now)
    assert result.so_far and result.empty_period_start is None
    assert (result.start_at, result.until_at, result.end_at) == (
        utc(2026, 12, 1),
        now,
        utc(2027, 1, 1),
    )
    assert (result.previous_start_at, result.previous_end_at) == (
        utc(2026, 11, 1),
        utc(2026, 11, 7, 10),
    )
    expected.assert_totals(result.totals, this_month)
    expected.assert_totals(result.previous_totals, same_days)


def test_a_long_month_so_far_is_clipped_to_the_shorter_month_before(engine: Engine) -> None:
    add_events(
        engine, make_event(timestamp=utc(2026, 2, 28, 23)), make_event(timestamp=utc(2026, 3, 2))
    )
    with Session(engine) as session:
        result = usage_report(session, period=Period.MONTH, now=utc(2026, 3, 31, 12))
    assert result.previous_end_at == utc(2026, 3, 1)
    assert (result.totals.invocations, result.previous_totals.invocations) == (1, 1)


def test_week_so_far_in_a_time_zone(engine: Engine) -> None:
    paris = UsageFilter(tz="Europe/Paris")
    now = utc(2026, 5, 6, 8)  # Wednesday 10:00 in Paris
    add_events(
        engine,
        make_event(timestamp=utc(2026, 4, 29, 7, 59)),  # last Wednesday 09:59 in Paris
        make_event(timestamp=utc(2026, 4, 29, 8)),  # last Wednesday 10:00: not like for like
        make_event(timestamp=utc(2026, 5, 4, 12)),
    )
    with Session(engine) as session:
        result = usage_report(session, period=Period.WEEK, filter=paris, now=now)
    assert result.previous_end_at == now - timedelta(days=7)
    assert (result.totals.invocations, result.previous_totals.invocations) == (1, 1)


def test_a_finished_period_is_compared_with_the_whole_period_before(engine: Engine) -> None:
    november = [make_event(timestamp=utc(2026, 11, 30, 23))]
    october = [make_event(timestamp=utc(2026, 10, 1)), make_event(timestamp=utc(2026, 10, 31, 23))]
    add_events(engine, *november, *october)
    with Session(engine) as session:
        result = usage_report(
            session, period=Period.MONTH, on=date(2026, 11, 7), now=utc(2026, 12, 7)
        )
    assert not result.so_far and result.until_at == result.end_at == utc(2026, 12, 1)
    assert (result.previous_start_at, result.previous_end_at) == (
        utc(2026, 10, 1),
        utc(2026, 11, 1),
    )
    expected.assert_totals(result.totals, november)
    expected.assert_totals(result.previous_totals, october)


def test_an_empty_current_period_falls_back_to_the_latest_with_invocations(
    engine: Engine,
) -> None:
    imported = [make_event(timestamp=utc(2026, 11, 3)), make_event(timestamp=utc(2026, 11, 5))]
    add_events(engine, *imported, make_event(timestamp=utc(2026, 11, 2)))
    with Session(engine) as session:
        fallen = usage_report(session, period=Period.DAY, now=utc(2026, 12, 7, 10))
        asked = usage_report(
            session, period=Period.DAY, on=date(2026, 12, 7), now=utc(2026, 12, 7, 10)
        )
        nothing = usage_report(
            session,
            period=Period.DAY,
            filter=UsageFilter(project_id="none"),
            now=utc(2026, 12, 7, 10),
        )
    assert fallen.empty_period_start == date(2026, 12, 7)
    assert fallen.period_start == date(2026, 11, 5) and not fallen.so_far
    expected.assert_totals(fallen.totals, imported[1:])
    # The 4th had nothing: a whole empty day before.
    assert fallen.previous_start_at == utc(2026, 11, 4)
    expected.assert_totals(fallen.previous_totals, [])
    # A date asked for is reported, empty or not; so is today when nothing was ever recorded.
    assert asked.empty_period_start is None and asked.totals.invocations == 0
    assert nothing.empty_period_start is None and nothing.period_start == date(2026, 12, 7)
