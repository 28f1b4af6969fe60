"""The numbers every aggregate carries: cache tokens summed through rollups and raw edges alike,
counts past 2^31 kept exact, and costs nobody reported left unknown (None), never zero, with
the count of unpriced invocations beside every sum. On SQLite and PostgreSQL, against sums
computed here from the events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.models.queries import (
    leaderboard,
    list_invocations,
    list_tasks,
    reading_raw_rows,
    stats_by_name,
    usage_by_period,
    usage_report,
    usage_stats,
)
from tests import expected
from tests.factories import add_events, make_event

START = datetime(2026, 3, 30, 22, 17, tzinfo=UTC)  # a month's end, off the hour
RANGE = UsageFilter(since=datetime(2026, 3, 30, 23, 41, tzinfo=UTC))  # raw edge, then buckets
NOW = datetime(2026, 5, 20, tzinfo=UTC)


def cached_runs() -> list[UsageEvent]:
    """Agents and skills with cache-heavy token mixes over two months, some without cache
    counts, some without a cost, one still running."""
    events = [
        make_event(
            kind="skill" if i % 4 == 3 else "agent",
            name=("Explore", "code-reviewer", "general-purpose", "pdf")[i % 4],
            task_id=f"task-{i % 5}",
            timestamp=START + timedelta(minutes=53 * i * i),
            input_tokens=i * 13 if i % 6 else None,
            output_tokens=i * 101,
            cache_read_tokens=i * 1_900_000_021 if i % 5 else None,
            cache_creation_tokens=i * 40_009 if i % 7 else None,
            cost_usd=None if i % 3 == 0 else i / 16,
        )
        for i in range(48)
    ]
    running = make_event(
        name="Explore",
        status=Status.RUNNING,
        timestamp=START + timedelta(days=3),
        cache_read_tokens=12_345,
        cache_creation_tokens=678,
    )
    return [*events, running]


def in_range(events: list[UsageEvent], filter: UsageFilter) -> list[UsageEvent]:
    return [
        event
        for event in events
        if (filter.since is None or event.timestamp >= filter.since)
        and (filter.until is None or event.timestamp < filter.until)
    ]


@pytest.mark.parametrize("raw", [False, True], ids=["rollups", "raw rows"])
def test_cache_tokens_sum_through_every_aggregate(engine: Engine, raw: bool) -> None:
    events = cached_runs()
    add_events(engine, *events)
    assert sum(event.cache_read_tokens or 0 for event in events) > 2**31
    chosen = in_range(events, RANGE)
    with Session(engine) as session:
        if raw:
            with reading_raw_rows():
                stats = usage_stats(session, filter=RANGE)
                page = stats_by_name(session, filter=RANGE, limit=100)
        else:
            stats = usage_stats(session, filter=RANGE)
            page = stats_by_name(session, filter=RANGE, limit=100)
    expected.assert_totals(stats, chosen)
    assert stats.total_tokens == sum(
        getattr(event, name) or 0 for event in chosen for name in expected.TOKEN_FIELDS
    )
    for item in page.items:
        expected.assert_totals(
            item, [e for e in chosen if (e.kind, e.name) == (item.kind, item.name)]
        )


def test_cache_tokens_in_histories_reports_leaderboards_and_tasks(engine: Engine) -> None:
    events = cached_runs()
    add_events(engine, *events)
    with Session(engine) as session:
        history = usage_by_period(session, filter=RANGE.replace(until=NOW), period=Period.WEEK)
        report = usage_report(session, period=Period.MONTH, on=date(2026, 4, 9))
        board = leaderboard(session, metric=LeaderboardMetric.TOKENS, limit=10)
        tasks = list_tasks(session, limit=10)
    for bucket in history.buckets:
        expected.assert_totals(
            bucket, in_range(events, UsageFilter(since=bucket.start_at, until=bucket.end_at))
        )
    april = in_range(
        events,
        UsageFilter(since=datetime(2026, 4, 1, tzinfo=UTC), until=datetime(2026, 5, 1, tzinfo=UTC)),
    )
    expected.assert_totals(report.totals, april)
    for row in report.agents + report.skills:
        expected.assert_totals(row, [e for e in april if (e.kind, e.name) == (row.kind, row.name)])
    by_name: dict[tuple[Kind, str], list[UsageEvent]] = {}
    for event in events:
        by_name.setdefault((event.kind, event.name), []).append(event)
    totals = {key: expected.totals(group) for key, group in by_name.items()}
    ranked = sorted(totals, key=lambda key: (-totals[key]["total_tokens"], key[1], key[0].value))
    assert [(entry.kind, entry.name) for entry in board] == ranked
    for entry in board:
        assert entry.value == totals[entry.kind, entry.name]["total_tokens"]
        assert entry.unpriced_invocations == totals[entry.kind, entry.name]["unpriced_invocations"]
    for task in tasks.items:
        of_task = expected.totals(e for e in events if e.task_id == task.task_id)
        for name in ("total_cost_usd", "unpriced_invocations", *expected.TOKEN_FIELDS):
            assert getattr(task, name) == pytest.approx(of_task[name]), name
        assert task.total_tokens == of_task["total_tokens"]


def test_invocations_list_cache_tokens_cost_source_and_source(engine: Engine) -> None:
    events = [
        make_event(cache_read_tokens=3_000_000_000, cache_creation_tokens=5, source="import"),
        make_event(kind="skill", name="pdf", cost_usd=None, cache_read_tokens=None, source="hook"),
    ]
    add_events(engine, *events)
    with Session(engine) as session:
        page = list_invocations(session, limit=10)
    found = {record.event_id: record for record in page.items}
    for event in events:
        record = found[event.event_id]
        assert record.cache_read_tokens == event.cache_read_tokens
        assert record.cache_creation_tokens == event.cache_creation_tokens
        assert record.cost_source == event.cost_source
        assert record.source == event.source


def test_counts_past_32_bits_are_exact(engine: Engine) -> None:
    events = [
        make_event(input_tokens=1_500_000_000, timestamp=START + timedelta(hours=i))
        for i in range(3)
    ]
    add_events(engine, *events)
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(name="code-reviewer"))
    assert stats.input_tokens == 4_500_000_000


def unpriced_skills() -> list[UsageEvent]:
    return [
        make_event(
            kind="skill",
            name="xlsx",
            cost_usd=None,
            input_tokens=None,
            output_tokens=None,
            timestamp=START + timedelta(minutes=10 * i),
        )
        for i in range(3)
    ]


@pytest.mark.parametrize("raw", [False, True], ids=["rollups", "raw rows"])
def test_a_cost_nobody_reported_is_unknown(engine: Engine, raw: bool) -> None:
    skills = unpriced_skills()
    add_events(engine, *skills)
    scope = UsageFilter(kind=Kind.SKILL, name="xlsx", since=START - timedelta(minutes=5))
    with Session(engine) as session:
        if raw:
            with reading_raw_rows():
                stats = usage_stats(session, filter=scope)
        else:
            stats = usage_stats(session, filter=scope)
            report = usage_report(session, period=Period.MONTH, on=START.date())
            history = usage_by_period(
                session, filter=scope.replace(until=START + timedelta(days=2)), period=Period.DAY
            )
    assert stats.total_cost_usd is None and stats.avg_cost_usd is None
    assert stats.unpriced_invocations == 3
    if raw:
        return
    assert report.totals.total_cost_usd is None and report.totals.unpriced_invocations == 3
    assert report.change.total_cost_usd_delta is None
    assert [row.total_cost_usd for row in report.skills] == [None]
    # A day with the skill's runs is unknown; a day without any run cost nothing.
    assert [bucket.total_cost_usd for bucket in history.buckets] == [None, 0.0, 0.0]
    assert [bucket.unpriced_invocations for bucket in history.buckets] == [3, 0, 0]


def test_a_partly_priced_sum_says_how_many_are_unpriced(engine: Engine) -> None:
    priced = [
        make_event(kind="skill", name="xlsx", cost_usd=cost, timestamp=START + timedelta(days=1))
        for cost in (0.5, 0.25)
    ]
    events = [*unpriced_skills(), *priced]
    add_events(engine, *events)
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(kind=Kind.SKILL, name="xlsx"))
        board = leaderboard(session, metric=LeaderboardMetric.COST)
    assert stats.total_cost_usd == 0.75 and stats.avg_cost_usd == 0.375
    assert stats.unpriced_invocations == 3
    expected.assert_totals(stats, events)
    assert [(entry.value, entry.unpriced_invocations) for entry in board] == [(0.75, 3)]


def test_totals_of_nothing_cost_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter())
    assert (stats.invocations, stats.total_cost_usd, stats.unpriced_invocations) == (0, 0.0, 0)


def test_a_cost_sum_is_the_same_whichever_way_its_rows_are_read(engine: Engine) -> None:
    """$0.10 + $0.20 + $0.30 is $0.60 in every answer, not the 0.6000000000000001 of adding
    binary floats in the order the database happened to read them (a task read page by page
    and read whole gave two different figures)."""
    events = [
        make_event(task_id="sum-task", cost_usd=cost, timestamp=START + timedelta(hours=i))
        for i, cost in enumerate((0.1, 0.2, 0.3))
    ]
    add_events(engine, *events)
    with Session(engine) as session, reading_raw_rows():
        raw = usage_stats(session, filter=UsageFilter())
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter())
        tasks = list_tasks(session, filter=UsageFilter())
        history = usage_by_period(
            session,
            filter=UsageFilter(since=START, until=START + timedelta(days=1)),
            period=Period.DAY,
        )
    assert raw.total_cost_usd == stats.total_cost_usd == 0.6
    assert raw.avg_cost_usd == stats.avg_cost_usd == 0.2
    assert [task.total_cost_usd for task in tasks.items] == [0.6]
    assert history.totals.total_cost_usd == 0.6
