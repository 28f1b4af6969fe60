"""The query layer's inputs: UsageFilter validation and the calendar buckets behind histories."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from claude_api.errors import InvalidFilter
from claude_api.events import MAX_NAME_LENGTH, Kind, Status
from claude_api.models.filters import (
    MAX_BUCKETS,
    LeaderboardMetric,
    Period,
    UsageFilter,
    check_count,
    check_limit,
    to_enum,
)
from claude_api.models.queries._calendar import calendar_buckets
from claude_api.models.queries._raw_rows import bytewise, usage_rows

MOMENT = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_strings_become_enums_and_times_utc() -> None:
    paris = timezone(timedelta(hours=2))
    filter = UsageFilter(kind="skill", status="failed", since=MOMENT.astimezone(paris))
    assert (filter.kind, filter.status) == (Kind.SKILL, Status.FAILED)
    assert filter.since == MOMENT and filter.since.tzinfo is UTC
    assert filter.zone == ZoneInfo("UTC")
    assert filter.replace(tz="Europe/Paris").zone == ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "robot"}, "kind"),
        ({"status": "done"}, "status"),
        ({"name": ""}, "name"),
        ({"name": "x" * (MAX_NAME_LENGTH + 1)}, "name"),
        ({"project_id": ""}, "project_id"),
        ({"model": 3}, "model"),
        ({"task_id": ""}, "task_id"),
        ({"since": datetime(2026, 5, 1)}, "since"),
        ({"until": "2026-05-01"}, "until"),
        ({"since": MOMENT, "until": MOMENT}, "since"),
        ({"since": MOMENT, "until": MOMENT - timedelta(seconds=1)}, "since"),
        ({"tz": "Mars/Olympus_Mons"}, "tz"),
        ({"tz": ""}, "tz"),
        ({"tz": "America"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
    ],
)
def test_bad_filters_name_their_field(fields: dict, field: str) -> None:
    with pytest.raises(InvalidFilter) as error:
        UsageFilter(**fields)
    assert error.value.field == field


def test_replace_validates() -> None:
    with pytest.raises(InvalidFilter) as error:
        UsageFilter().replace(tz="Nowhere")
    assert error.value.field == "tz"


def test_limits_and_enums() -> None:
    assert check_limit(1) == 1 and check_limit(1000) == 1000
    assert check_count(0, field="n") == 0
    for bad in [0, -1, 1001, True, 2.0]:
        with pytest.raises(InvalidFilter):
            check_limit(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidFilter) as error:
        check_count(-1, field="min_invocations")
    assert error.value.field == "min_invocations"
    assert to_enum(LeaderboardMetric, "tokens", field="metric") is LeaderboardMetric.TOKENS
    assert to_enum(Period, Period.WEEK, field="period") is Period.WEEK


def test_names_compare_bytewise_on_postgresql() -> None:
    name = usage_rows(UsageFilter(kind="agent")).c.name
    assert 'COLLATE "C"' in str((bytewise(name) > "x").compile(dialect=postgresql.dialect()))
    assert "COLLATE" not in str((bytewise(name) > "x").compile(dialect=sqlite.dialect()))


# ---- calendar buckets (pure Python) -----------------------------------------------------------


def test_bucket_cap() -> None:
    zone = ZoneInfo("UTC")
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert len(calendar_buckets(since, since + timedelta(days=MAX_BUCKETS), Period.DAY, zone)) == (
        MAX_BUCKETS
    )
    with pytest.raises(InvalidFilter) as error:
        calendar_buckets(since, since + timedelta(days=MAX_BUCKETS, seconds=1), Period.DAY, zone)
    assert error.value.field == "since"
    # A huge range fails fast, after `maximum` buckets, not after walking the whole range.
    with pytest.raises(InvalidFilter):
        calendar_buckets(since, datetime(9999, 1, 1, tzinfo=UTC), Period.DAY, zone, maximum=2)


def test_a_skipped_local_date_has_no_bucket() -> None:
    # Samoa moved across the date line: 2011-12-30 never happened in Pacific/Apia.
    zone = ZoneInfo("Pacific/Apia")
    since = datetime(2011, 12, 29, tzinfo=zone).astimezone(UTC)
    until = datetime(2012, 1, 1, tzinfo=zone).astimezone(UTC)
    buckets = calendar_buckets(since, until, Period.DAY, zone)
    assert [b.period_start for b in buckets] == [date(2011, 12, 29), date(2011, 12, 31)]
    assert buckets[0].end_at == buckets[1].start_at


def test_far_future_range_is_invalid_not_a_crash() -> None:
    since = datetime(9999, 12, 31, tzinfo=UTC)
    with pytest.raises(InvalidFilter):
        calendar_buckets(since, datetime.max.replace(tzinfo=UTC), Period.MONTH, ZoneInfo("UTC"))


ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kathmandu",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Apia",
]


@given(
    start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)),
    minutes=st.integers(min_value=1, max_value=400 * 24 * 60),
    # Calendar periods: hours over such ranges pass the 1,000 buckets (test_queries_hours.py).
    period=st.sampled_from([Period.DAY, Period.WEEK, Period.MONTH]),
    tz=st.sampled_from(ZONES),
)
def test_buckets_tile_the_range_on_local_calendar_edges(
    start: datetime, minutes: int, period: Period, tz: str
) -> None:
    zone = ZoneInfo(tz)
    since = start.replace(tzinfo=UTC)
    until = since + timedelta(minutes=minutes)
    buckets = calendar_buckets(since, until, period, zone)
    assert buckets[0].start_at == since and buckets[-1].end_at == until
    for before, after in pairwise(buckets):
        assert before.end_at == after.start_at
        # Every inner edge is the first instant of a local date that starts a period.
        first_local = after.start_at.astimezone(zone)
        assert first_local.date() == after.period_start
        assert (after.start_at - timedelta(microseconds=1)).astimezone(zone).date() < (
            after.period_start
        )
        if period is Period.WEEK:
            assert after.period_start.isoweekday() == 1
        if period is Period.MONTH:
            assert after.period_start.day == 1
    for bucket in buckets:
        assert bucket.start_at < bucket.end_at
        assert isinstance(bucket.period_start, date)
