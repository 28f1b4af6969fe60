"""usage_by_period: calendar buckets in a time zone (DST, ISO weeks, months), empty buckets,
clipped range ends, and the property that buckets add up to the range's statistics."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import InvalidFilter, NotFound
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import MAX_BUCKETS, Period, UsageFilter
from claude_api.models.queries import usage_by_period, usage_stats
from claude_api.models.results import History
from tests import expected
from tests.factories import BASE_TIME, add_events, make_event

NEW_YORK = "America/New_York"
PARIS = "Europe/Paris"


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def local(day: date, tz: str, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def history(engine: Engine, period: Period | str, **fields: object) -> History:
    with Session(engine) as session:
        return usage_by_period(session, filter=UsageFilter(**fields), period=period)


def by_day(events: list[UsageEvent], tz: str) -> dict[date, list[UsageEvent]]:
    days: dict[date, list[UsageEvent]] = defaultdict(list)
    for event in events:
        days[event.timestamp.astimezone(ZoneInfo(tz)).date()].append(event)
    return days


def test_day_buckets_include_empty_days(engine: Engine) -> None:
    events = [
        make_event(timestamp=utc(2026, 5, 1, 0, 0)),
        make_event(timestamp=utc(2026, 5, 1, 23, 59), status=Status.FAILED),
        make_event(timestamp=utc(2026, 5, 3, 12, 0), status=Status.RUNNING),
        make_event(timestamp=utc(2026, 5, 3, 13, 0), kind="skill", name="code-reviewer"),
    ]
    add_events(engine, *events, make_event(name="other", timestamp=utc(2026, 5, 2)))
    result = history(
        engine,
        Period.DAY,
        name="code-reviewer",
        kind="agent",
        since=utc(2026, 4, 30),
        until=utc(2026, 5, 4),
    )
    agent_events = [e for e in events if e.kind is Kind.AGENT]
    days = by_day(agent_events, "UTC")
    assert [b.period_start for b in result.buckets] == [
        date(2026, 4, 30) + timedelta(days=i) for i in range(4)
    ]
    for bucket in result.buckets:
        expected.assert_totals(bucket, days.get(bucket.period_start, []))
        assert bucket.end_at - bucket.start_at == timedelta(days=1)
    assert (result.kind, result.name, result.period, result.tz) == (
        Kind.AGENT,
        "code-reviewer",
        Period.DAY,
        "UTC",
    )


def test_an_event_at_local_midnight_opens_the_new_day(engine: Engine) -> None:
    midnight = local(date(2026, 5, 2), PARIS)  # 22:00 UTC on May 1st
    events = [
        make_event(timestamp=midnight - timedelta(microseconds=1)),
        make_event(timestamp=midnight),
        make_event(timestamp=utc(2026, 5, 2, 23, 30)),  # 01:30 on May 3rd in Paris
    ]
    add_events(engine, *events)
    result = history(
        engine,
        "day",
        tz=PARIS,
        since=local(date(2026, 5, 1), PARIS),
        until=local(date(2026, 5, 4), PARIS),
    )
    assert [(b.period_start, b.invocations) for b in result.buckets] == [
        (date(2026, 5, 1), 1),
        (date(2026, 5, 2), 1),
        (date(2026, 5, 3), 1),
    ]
    assert result.buckets[1].start_at == midnight


def test_late_utc_evening_lands_on_the_next_day_in_paris(engine: Engine) -> None:
    late = make_event(timestamp=utc(2026, 5, 1, 23, 30))
    add_events(engine, late)
    since, until = utc(2026, 5, 1), utc(2026, 5, 3)
    in_utc = history(engine, Period.DAY, since=since, until=until)
    in_paris = history(engine, Period.DAY, since=since, until=until, tz=PARIS)
    assert {b.period_start: b.invocations for b in in_utc.buckets if b.invocations} == {
        date(2026, 5, 1): 1
    }
    assert {b.period_start: b.invocations for b in in_paris.buckets if b.invocations} == {
        date(2026, 5, 2): 1
    }


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 8), 23), (date(2026, 3, 9), 24), (date(2026, 11, 1), 25)],
)
def test_dst_change_days_last_23_or_25_hours(engine: Engine, day: date, hours: int) -> None:
    # Events one minute after each local midnight and one minute before the next.
    events = [
        make_event(timestamp=local(day, NEW_YORK) + timedelta(minutes=1)),
        make_event(timestamp=local(day + timedelta(days=1), NEW_YORK) - timedelta(minutes=1)),
        make_event(timestamp=local(day + timedelta(days=1), NEW_YORK) + timedelta(minutes=1)),
    ]
    add_events(engine, *events)
    result = history(
        engine,
        Period.DAY,
        tz=NEW_YORK,
        since=local(day, NEW_YORK),
        until=local(day + timedelta(days=2), NEW_YORK),
    )
    first, second = result.buckets
    assert first.end_at - first.start_at == timedelta(hours=hours)
    assert (first.period_start, first.invocations) == (day, 2)
    assert (second.period_start, second.invocations) == (day + timedelta(days=1), 1)


def test_weeks_are_iso_weeks_starting_monday(engine: Engine) -> None:
    sunday_night = utc(2026, 5, 3, 23, 59)
    monday = utc(2026, 5, 4, 0, 0)
    events = [
        make_event(timestamp=utc(2026, 4, 27)),
        make_event(timestamp=sunday_night),
        make_event(timestamp=monday),
    ]
    add_events(engine, *events)
    result = history(engine, Period.WEEK, since=utc(2026, 4, 29), until=utc(2026, 5, 12))
    assert [(b.period_start, b.invocations) for b in result.buckets] == [
        (date(2026, 4, 27), 1),
        (date(2026, 5, 4), 1),
        (date(2026, 5, 11), 0),
    ]
    assert all(b.period_start.isoweekday() == 1 for b in result.buckets)
    # The ends are clipped to the range; the week in between is whole.
    assert result.buckets[0].start_at == utc(2026, 4, 29)
    assert result.buckets[1].end_at - result.buckets[1].start_at == timedelta(days=7)
    assert result.buckets[-1].end_at == utc(2026, 5, 12)


def test_month_buckets_follow_the_calendar(engine: Engine) -> None:
    events = [make_event(timestamp=utc(2026, month, 28, 12)) for month in (1, 2, 3, 4)]
    events.append(make_event(timestamp=local(date(2026, 4, 1), PARIS)))  # 22:00 UTC, March 31st
    add_events(engine, *events)
    result = history(
        engine,
        Period.MONTH,
        tz=PARIS,
        since=local(date(2026, 1, 1), PARIS),
        until=local(date(2026, 5, 1), PARIS),
    )
    assert [(b.period_start, b.invocations) for b in result.buckets] == [
        (date(2026, 1, 1), 1),
        (date(2026, 2, 1), 1),
        (date(2026, 3, 1), 1),
        (date(2026, 4, 1), 2),
    ]
    lengths = [b.end_at - b.start_at for b in result.buckets]
    # February has 28 days; March loses the hour that daylight saving time skips.
    assert lengths == [
        timedelta(days=31),
        timedelta(days=28),
        timedelta(days=31, hours=-1),
        timedelta(days=30),
    ]


def test_empty_range_gives_zero_buckets(engine: Engine) -> None:
    add_events(engine, make_event(name="reviewer", timestamp=BASE_TIME))
    result = history(
        engine,
        Period.DAY,
        name="reviewer",
        since=BASE_TIME + timedelta(days=1),
        until=BASE_TIME + timedelta(days=5),
    )
    assert len(result.buckets) == 5  # four days, clipped at both ends
    for bucket in result.buckets:
        expected.assert_totals(bucket, [])


def test_buckets_tile_the_range(engine: Engine) -> None:
    since, until = utc(2026, 2, 3, 17, 5), utc(2026, 4, 9, 6, 30)
    result = history(engine, Period.WEEK, since=since, until=until, tz=NEW_YORK)
    assert result.start_at == since and result.end_at == until
    assert result.buckets[0].start_at == since and result.buckets[-1].end_at == until
    for before, after in pairwise(result.buckets):
        assert before.end_at == after.start_at


def test_default_range_ends_now(engine: Engine) -> None:
    now = utc(2026, 5, 20, 15)
    add_events(engine, make_event(timestamp=now - timedelta(days=29)))
    with Session(engine) as session:
        result = usage_by_period(session, filter=UsageFilter(), period=Period.DAY, now=now)
    assert len(result.buckets) == 30
    assert result.end_at == now and result.start_at == utc(2026, 4, 21)
    assert sum(b.invocations for b in result.buckets) == 1


def test_unknown_name_is_not_found(engine: Engine) -> None:
    add_events(engine, make_event(name="reviewer"))
    with pytest.raises(NotFound):
        history(engine, Period.DAY, name="reveiwer", since=BASE_TIME - timedelta(days=1))


def test_too_many_buckets_is_invalid(engine: Engine) -> None:
    since = utc(2020, 1, 1)
    fits = history(engine, Period.DAY, since=since, until=since + timedelta(days=MAX_BUCKETS))
    assert len(fits.buckets) == MAX_BUCKETS
    with pytest.raises(InvalidFilter) as error:
        history(engine, Period.DAY, since=since, until=since + timedelta(days=MAX_BUCKETS + 1))
    assert error.value.field == "since"


def test_unknown_period_is_invalid(engine: Engine) -> None:
    with pytest.raises(InvalidFilter) as error:
        history(engine, "year", since=BASE_TIME - timedelta(days=1))
    assert error.value.field == "period"


def test_since_after_now_is_invalid(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as error:
        usage_by_period(
            session,
            filter=UsageFilter(since=BASE_TIME),
            period="day",
            now=BASE_TIME - timedelta(days=1),
        )
    assert error.value.field == "since"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=200 * 24 * 60), max_size=30),
    statuses=st.lists(st.sampled_from(list(Status)), min_size=30, max_size=30),
    # Calendar periods: hours over such ranges pass the 1,000 buckets (test_queries_hours.py).
    period=st.sampled_from([Period.DAY, Period.WEEK, Period.MONTH]),
    tz=st.sampled_from(["UTC", PARIS, NEW_YORK, "Asia/Kathmandu", "Australia/Lord_Howe"]),
    start=st.integers(min_value=0, max_value=200 * 24 * 60),
    length=st.integers(min_value=1, max_value=150 * 24 * 60),
)
def test_buckets_add_up_to_the_range(
    engine: Engine,
    offsets: list[int],
    statuses: list[Status],
    period: Period,
    tz: str,
    start: int,
    length: int,
) -> None:
    name = f"agent-{uuid.uuid4().hex}"  # examples share the database: each gets its own agent
    origin = utc(2025, 10, 1)
    events = [
        make_event(name=name, timestamp=origin + timedelta(minutes=offset), status=status)
        for offset, status in zip(offsets, statuses, strict=False)
    ]
    add_events(engine, *events, make_event(name=name, timestamp=origin - timedelta(days=1)))
    since = origin + timedelta(minutes=start)
    until = since + timedelta(minutes=length)
    filter = UsageFilter(name=name, since=since, until=until, tz=tz)
    with Session(engine) as session:
        result = usage_by_period(session, filter=filter, period=period)
        stats = usage_stats(session, filter=filter)
    in_range = [e for e in events if since <= e.timestamp < until]
    assert sum(b.invocations for b in result.buckets) == stats.invocations == len(in_range)
    assert sum(b.failed for b in result.buckets) == stats.failed
    for bucket in result.buckets:
        inside = [e for e in in_range if bucket.start_at <= e.timestamp < bucket.end_at]
        assert bucket.invocations == len(inside)
        first = bucket.start_at.astimezone(ZoneInfo(tz)).date()
        assert bucket.period_start <= first
