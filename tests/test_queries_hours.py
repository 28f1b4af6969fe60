"""Histories by the hour: local hours in any time zone (a clock change makes an hour longer or
repeats one), each bucket's counts as the raw rows give them, the default range of the last 24
hours; a report refuses an hour."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import InvalidFilter
from claude_api.events import Status
from claude_api.models.filters import MAX_BUCKETS, Period, UsageFilter
from claude_api.models.queries import reading_raw_rows, usage_by_period, usage_report
from claude_api.models.queries._calendar import calendar_buckets
from tests.factories import add_events, make_event

ZONES = ["UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "Europe/Paris"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@given(
    start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)),
    minutes=st.integers(min_value=1, max_value=40 * 24 * 60),
    tz=st.sampled_from(ZONES),
)
def test_hours_tile_the_range_on_local_hour_edges(start: datetime, minutes: int, tz: str) -> None:
    zone = ZoneInfo(tz)
    since = start.replace(tzinfo=UTC)
    until = since + timedelta(minutes=minutes)
    buckets = calendar_buckets(since, until, Period.HOUR, zone)
    assert buckets[0].start_at == since and buckets[-1].end_at == until
    for before, after in pairwise(buckets):
        assert before.end_at == after.start_at
        local = after.start_at.astimezone(zone)
        assert (local.minute, local.second, local.microsecond) == (0, 0, 0)
        assert after.period_start == local.date()
        # An hour lasts an hour, or an hour and a half where a clock skips half an hour.
        assert after.start_at - before.start_at <= timedelta(minutes=90) or before is buckets[0]


def test_a_clock_change_repeats_an_hour_or_merges_two() -> None:
    new_york = ZoneInfo("America/New_York")
    # 2025-11-02: 01:00-02:00 happens twice in New York.
    fall = calendar_buckets(utc(2025, 11, 2, 4), utc(2025, 11, 2, 8), Period.HOUR, new_york)
    local = [(b.start_at.astimezone(new_york).hour, b.end_at - b.start_at) for b in fall]
    assert local == [(0, timedelta(hours=1)), (1, timedelta(hours=1)), (1, timedelta(hours=1)),
                     (2, timedelta(hours=1))]  # fmt: skip
    # 2025-10-05: Lord Howe's clocks go from 02:00 to 02:30; the hour from 01:00 lasts 90 min.
    howe = ZoneInfo("Australia/Lord_Howe")
    spring = calendar_buckets(utc(2025, 10, 4, 13, 30), utc(2025, 10, 4, 17), Period.HOUR, howe)
    assert [b.end_at - b.start_at for b in spring][:2] == [
        timedelta(hours=1),
        timedelta(minutes=90),
    ]
    # Kathmandu is 5:45 ahead: its hours start at a quarter past the UTC hour.
    kathmandu = ZoneInfo("Asia/Kathmandu")
    hours = calendar_buckets(utc(2025, 1, 1, 0), utc(2025, 1, 1, 3), Period.HOUR, kathmandu)
    assert [b.start_at.minute for b in hours[1:]] == [15, 15, 15]


def test_too_many_hours_is_bad_input() -> None:
    since = utc(2025, 1, 1)
    with pytest.raises(InvalidFilter) as error:
        calendar_buckets(since, since + timedelta(hours=MAX_BUCKETS + 1), Period.HOUR, UTC)
    assert error.value.field == "since"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=3 * 24 * 60), min_size=1, max_size=25),
    tz=st.sampled_from(ZONES),
    start=st.integers(min_value=0, max_value=24 * 60),
    hours=st.integers(min_value=1, max_value=60),
)
def test_each_hour_counts_what_started_in_it(
    engine: Engine, offsets: list[int], tz: str, start: int, hours: int
) -> None:
    name = f"agent-{uuid.uuid4().hex}"
    origin = utc(2025, 11, 1)  # New York's clocks go back on the 2nd
    events = [
        make_event(name=name, timestamp=origin + timedelta(minutes=offset, seconds=7))
        for offset in offsets
    ]
    events.append(make_event(name=name, status=Status.RUNNING, timestamp=origin + timedelta(1)))
    add_events(engine, *events)
    since = origin + timedelta(minutes=start)
    until = since + timedelta(hours=hours)
    filter = UsageFilter(name=name, since=since, until=until, tz=tz)
    with Session(engine) as session:
        history = usage_by_period(session, filter=filter, period=Period.HOUR)
        with reading_raw_rows():
            raw = usage_by_period(session, filter=filter, period=Period.HOUR)
    assert history == raw
    for bucket in history.buckets:
        inside = [e for e in events if bucket.start_at <= e.timestamp < bucket.end_at]
        assert bucket.invocations == len(inside)
        assert bucket.running == sum(e.status is Status.RUNNING for e in inside)
    assert history.totals.invocations == len([e for e in events if since <= e.timestamp < until])


def test_without_a_range_the_last_24_hours(engine: Engine) -> None:
    now = utc(2025, 6, 3, 10, 30)
    add_events(engine, make_event(timestamp=now - timedelta(hours=23, minutes=20)))
    add_events(engine, make_event(timestamp=now - timedelta(hours=25)))
    with Session(engine) as session:
        history = usage_by_period(session, filter=UsageFilter(), period=Period.HOUR, now=now)
    assert len(history.buckets) == 24
    assert history.start_at == utc(2025, 6, 2, 11) and history.end_at == now
    assert [b.invocations for b in history.buckets] == [1] + [0] * 23


def test_a_report_covers_no_hour(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as error:
        usage_report(session, period=Period.HOUR)
    assert error.value.field == "period"
