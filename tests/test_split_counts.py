"""Ranges split for sums of counts: whole buckets less the buckets outside the range cover
exactly the range, and failure counts, percentiles and leaderboards read that way agree with
the totals, also after purging rollup buckets that such a split would subtract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import Kind, Status
from claude_api.models import data_version
from claude_api.models.filters import LeaderboardMetric, UsageFilter
from claude_api.models.queries import (
    computing_afresh,
    leaderboard,
    reading_raw_rows,
    usage_stats,
)
from claude_api.models.queries._partial_sums import counted_pieces
from claude_api.models.queries._range_split import Interval, Pieces, split_counts
from claude_api.models.retention import bucket_floor, purge
from tests.factories import add_events, make_event

START = datetime(2025, 12, 20, tzinfo=UTC)
moments = st.integers(min_value=0, max_value=120 * 86_400 * 4).map(
    lambda quarter_seconds: START + timedelta(seconds=quarter_seconds / 4)
)


def _holds(interval: Interval, moment: datetime) -> bool:
    start, end = interval
    return (start is None or start <= moment) and (end is None or moment < end)


def _times_counted(pieces: Pieces, moment: datetime) -> int:
    """How many times an invocation starting at `moment` is counted: once per bucket added
    that holds it, minus once per bucket subtracted."""
    count = sum(_holds(interval, moment) for interval in pieces.raw)
    for sign, grains in ((1, pieces.rollup), (-1, pieces.less)):
        for grain, intervals in grains.items():
            bucket = bucket_floor(grain, moment)
            count += sign * sum(_holds(interval, bucket) for interval in intervals)
    return count


@settings(max_examples=300, deadline=None)
@given(
    since=st.none() | moments,
    until=st.none() | moments,
    now=st.none() | moments,
    probes=st.lists(moments, min_size=1, max_size=20),
)
def test_split_counts_counts_each_instant_of_the_range_once(
    since: datetime | None,
    until: datetime | None,
    now: datetime | None,
    probes: list[datetime],
) -> None:
    """Wherever `now` falls, inside the range or not: it changes which buckets are cheapest to
    read, never what they count (rows stamped ahead of the clock included)."""
    if since is not None and until is not None and since >= until:
        since, until = until, since + timedelta(seconds=1)
    pieces = split_counts(since, until, now)
    edges = [moment for moment in (since, until) if moment is not None]
    near = [edge + timedelta(microseconds=delta) for edge in edges for delta in (-1, 0, 1)]
    for moment in probes + near:
        assert _times_counted(pieces, moment) == int(_holds((since, until), moment))
    for intervals in pieces.less.values():
        assert all(start is not None and end is not None for start, end in intervals)


def test_a_month_less_a_few_days_reads_fewer_buckets() -> None:
    since = datetime(2026, 11, 3, 7, 37, tzinfo=UTC)
    pieces = split_counts(since, None)
    assert pieces.rollup == {"month": [(datetime(2026, 11, 1, tzinfo=UTC), None)]}
    assert pieces.less["day"] == [
        (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    ]
    assert pieces.raw == [(since, since.replace(minute=0) + timedelta(hours=1))]


def test_thirty_days_across_a_months_end_read_the_month_less_its_first_days() -> None:
    """The dashboard's "last 30 days" in New York: from 7 November 05:00 to 7 December 05:00
    UTC reads November less six days and five hours, then six days and five hours of
    December, instead of thirty daily buckets."""
    since = datetime(2026, 11, 7, 5, tzinfo=UTC)
    until = datetime(2026, 12, 7, 5, tzinfo=UTC)
    pieces = split_counts(since, until)
    november, december = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    assert pieces.rollup == {
        "month": [(november, december)],
        "day": [(december, december + timedelta(days=6))],
        "hour": [(december + timedelta(days=6), until)],
    }
    assert pieces.less == {
        "day": [(november, november + timedelta(days=6))],
        "hour": [(november + timedelta(days=6), since)],
    }
    assert pieces.raw == []


def test_a_range_ending_ahead_of_the_clock_reads_the_month_less_what_is_to_come() -> None:
    """The dashboard's "last 30 days" in New York asked on 8 December at 04:17 UTC ends at the
    coming local midnight: November less its first eight days, then December's month bucket
    less the buckets still to come (which hold nothing yet), rather than seven days and five
    hours of December."""
    since = datetime(2026, 11, 8, 5, tzinfo=UTC)
    until = datetime(2026, 12, 8, 5, tzinfo=UTC)
    now = datetime(2026, 12, 8, 4, 17, tzinfo=UTC)
    november, december = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    tomorrow, january = datetime(2026, 12, 9, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    pieces = split_counts(since, until, now)
    assert pieces.rollup == {"month": [(november, january)]}
    assert pieces.less == {
        "day": [(november, november + timedelta(days=7)), (tomorrow, january)],
        "hour": [(november + timedelta(days=7), since), (until, tomorrow)],
    }
    assert pieces.raw == []
    # Without the clock, every bucket costs what it would hold: December is read day by day.
    assert split_counts(since, until).rollup["day"] == [(december, december + timedelta(days=7))]


def test_a_range_inside_one_month_may_read_the_month_less_both_sides() -> None:
    """The dashboard's "last 7 days" in New York asked on 7 December before midnight lies
    inside December: the month less its first five hours and the buckets still to come. Most
    of November, long past: the month less a day on each side."""
    since = datetime(2026, 12, 1, 5, tzinfo=UTC)
    until = datetime(2026, 12, 8, 5, tzinfo=UTC)
    now = datetime(2026, 12, 7, 23, 58, tzinfo=UTC)
    december, january = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    tomorrow = datetime(2026, 12, 9, tzinfo=UTC)
    pieces = split_counts(since, until, now)
    assert pieces.rollup == {"month": [(december, january)]}
    assert pieces.less == {
        "hour": [(december, since), (until, tomorrow)],
        "day": [(tomorrow, january)],
    }
    november = datetime(2026, 11, 1, tzinfo=UTC)
    pieces = split_counts(november + timedelta(days=1), december - timedelta(days=1))
    assert pieces.rollup == {"month": [(november, december)]}
    assert pieces.less == {
        "day": [(november, november + timedelta(days=1)), (december - timedelta(days=1), december)]
    }


def test_counts_subtracting_buckets_agree_with_the_totals(
    engine: Engine,
) -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    events = [
        make_event(
            timestamp=datetime(2026, 11, day, 10, tzinfo=UTC),
            status=Status.FAILED,
            error_message=f"broke on day {day % 3}",
            duration_seconds=float(day),
            cost_usd=0.25 if day % 2 else None,
            cache_read_tokens=day * 1_000_000_007,
            cache_creation_tokens=day * 7 if day % 3 else None,
        )
        for day in range(1, 31)
    ]
    add_events(engine, *events)
    # From 2 November: November less its first day; the rollups of days before 10 November
    # go, but their month stays whole, so the first day can no longer be subtracted.
    since = datetime(2026, 11, 2, 6, tzinfo=UTC)
    question = UsageFilter(kind=Kind.AGENT, since=since)
    for purged in (False, True):
        if purged:
            purge(engine, raw_retention_days=None, rollup_retention_days=23, now=now)
        with computing_afresh(), Session(engine) as session:
            stats = usage_stats(session, filter=question, top_errors=3)
            board = leaderboard(session, filter=question, metric=LeaderboardMetric.USAGE)
            by_tokens = leaderboard(session, filter=question, metric=LeaderboardMetric.TOKENS)
        assert sum(error.count for error in stats.top_errors) == stats.failed
        assert stats.failed == (29 if not purged else 21)
        assert [entry.value for entry in board] == [stats.invocations]
        assert [entry.value for entry in by_tokens] == [stats.total_tokens]
        assert [entry.unpriced_invocations for entry in board] == [stats.unpriced_invocations]
        counted = [event for event in events if event.timestamp >= since][-stats.invocations :]
        tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
        assert stats.total_tokens == sum(
            getattr(event, name) or 0 for event in counted for name in tokens
        )
        assert stats.unpriced_invocations == sum(event.cost_usd is None for event in counted)
        with reading_raw_rows(), Session(engine) as session:
            raw = usage_stats(session, filter=question, top_errors=3)
        if not purged:
            assert stats.top_errors == raw.top_errors
            assert stats.p50_duration_seconds is not None and raw.p50_duration_seconds
            assert abs(stats.p50_duration_seconds - raw.p50_duration_seconds) <= 0.01 * 16


def test_rows_stamped_ahead_of_the_clock_are_counted_exactly(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A producer whose clock runs ahead records invocations "in the future": a range read as
    the current month less the buckets still to come counts those inside it and subtracts
    those after it, as the raw rows do."""
    now = datetime(2026, 12, 8, 4, 17, tzinfo=UTC)
    december = datetime(2026, 12, 1, 5, tzinfo=UTC)  # local midnight in New York
    monkeypatch.setattr(data_version, "utc_now", lambda: now)
    stamps = [datetime(2026, 11, day, 10, tzinfo=UTC) for day in range(1, 31, 2)]
    stamps += [datetime(2026, 12, day, 3, tzinfo=UTC) for day in range(1, 9)]
    # Ahead of the clock: inside the range (04:50), and after it (noon and 23:00).
    stamps += [now.replace(minute=50), now.replace(hour=12), now.replace(hour=23)]
    add_events(
        engine,
        *(
            make_event(
                timestamp=stamp,
                status=Status.FAILED if number % 2 else Status.COMPLETED,
                error_message=f"broke {number % 3}" if number % 2 else None,
                duration_seconds=float(number + 1),
                cost_usd=0.5,
            )
            for number, stamp in enumerate(stamps)
        ),
    )
    # The last 30 days across November's end, and the last 7 inside December.
    for since, count in ((datetime(2026, 11, 8, 5, tzinfo=UTC), 20), (december, 8)):
        question = UsageFilter(kind=Kind.AGENT, since=since, until=now.replace(hour=5, minute=0))
        assert _subtracted_after_the_clock(question)  # the month less what is to come
        with computing_afresh(), Session(engine) as session:
            stats = usage_stats(session, filter=question, top_errors=5)
            board = leaderboard(session, filter=question, metric=LeaderboardMetric.USAGE)
        with reading_raw_rows(), Session(engine) as session:
            raw = usage_stats(session, filter=question, top_errors=5)
        expected = [stamp for stamp in stamps if since <= stamp < question.until]
        assert stats.invocations == raw.invocations == len(expected) == count
        assert stats.failed == raw.failed
        assert stats.top_errors == raw.top_errors
        assert sum(error.count for error in stats.top_errors) == stats.failed
        assert [entry.value for entry in board] == [stats.invocations]
        assert stats.p50_duration_seconds is not None and raw.p50_duration_seconds is not None
        assert abs(stats.p50_duration_seconds - raw.p50_duration_seconds) <= 0.01 * 40


def _subtracted_after_the_clock(question: UsageFilter) -> list[Interval]:
    """The buckets after the clock that the counts of `question` subtract."""
    pieces = counted_pieces(question, None)
    return [
        interval
        for intervals in pieces.less.values()
        for interval in intervals
        if interval[0] is not None and interval[0] >= data_version.utc_now()
    ]
