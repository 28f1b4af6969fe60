"""Duration bins and history buckets of settled buckets, kept across writes: a live session's
writes leave them (a page redrawn computes again only its last days), any write reaching an
older bucket replaces them, and the percentiles and histories they give are always those
computed afresh."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session

from claude_api.events import Kind, Status
from claude_api.models import data_version, queries
from claude_api.models.filters import Period, UsageFilter
from claude_api.models.gateway import computing_afresh
from claude_api.models.queries.histories import usage_by_period_per_name
from claude_api.models.retention import purge
from tests.factories import add_events, make_event

NOW = datetime.now(UTC)
RANGE = UsageFilter(since=NOW - timedelta(days=75), until=NOW + timedelta(hours=1))


def settled_token(engine: Engine) -> int | None:
    with Session(engine) as session:
        return data_version.settled(session)


def percentiles(engine: Engine) -> dict[str, Any]:
    """Each agent's p50, p95 and p99 over the last 75 days, as the overview's leaderboard asks."""
    with Session(engine) as session:
        found = queries.stats_by_name(session, filter=RANGE, limit=50)
    return {
        stats.name: (
            stats.p50_duration_seconds,
            stats.p95_duration_seconds,
            stats.p99_duration_seconds,
        )
        for stats in found.items
    }


def afresh(read: Any, engine: Engine) -> Any:
    with computing_afresh():
        return read(engine)


@pytest.fixture
def bins_read(engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every read of the duration bins."""
    reads: list[dict[str, Any]] = []

    def seen(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if "duration_bins" in str(clause):
            reads.append(dict(multiparams[0]) if multiparams else dict(params))

    event.listen(engine, "before_execute", seen)
    yield reads
    event.remove(engine, "before_execute", seen)


def settled_months(read: dict[str, Any], grain: str = "month") -> list[str]:
    """The buckets of `grain` a read covers that ended two days ago or earlier."""
    settled = NOW - timedelta(days=2)
    return [
        key
        for key, value in read.items()
        if key.startswith(f"{grain}_")
        and key.endswith("_end")
        and value is not None
        and value <= settled
    ]


def trend_lines(engine: Engine) -> list[Any]:
    """The daily histories of both agents over the last 75 days, together as the overview's
    trend lines ask them, and of everything as its chart over time asks it."""
    with Session(engine) as session:
        together = usage_by_period_per_name(
            session,
            filter=RANGE.replace(kind=Kind.AGENT),
            period=Period.DAY,
            named=("code-reviewer", "debugger"),
        )
        total = queries.usage_by_period(session, filter=RANGE, period=Period.DAY)
    return [*together, total]


@pytest.fixture
def buckets_read(engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every read of a history's buckets (not of its whole range's totals)."""
    reads: list[dict[str, Any]] = []

    def seen(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if "edge_0" in str(clause):
            found = dict(multiparams[0]) if multiparams else dict(params)
            reads.append({key: value for key, value in found.items() if "whole_" not in key})

    event.listen(engine, "before_execute", seen)
    yield reads
    event.remove(engine, "before_execute", seen)


def history(days: int) -> list[Any]:
    """Two agents, a run every 6 hours for `days` days back from now, durations spread."""
    return [
        make_event(
            name=name,
            timestamp=NOW - timedelta(hours=6 * step),
            duration_seconds=1.0 + (step * 37 % 101) * factor,
        )
        for step in range(4 * days)
        for name, factor in (("code-reviewer", 0.5), ("debugger", 3.0))
    ]


def test_a_live_write_keeps_the_settled_bins_and_an_older_one_replaces_them(
    engine: Engine, bins_read: list[dict[str, Any]]
) -> None:
    add_events(engine, *history(70))
    assert percentiles(engine) == afresh(percentiles, engine)
    settled = settled_token(engine)
    assert settled is not None

    # A running session records: recent buckets only. The settled months are not read again.
    add_events(engine, make_event(name="debugger", timestamp=NOW, duration_seconds=9_000.0))
    assert settled_token(engine) == settled
    bins_read.clear()
    before = percentiles(engine)
    assert bins_read and not [read for read in bins_read if settled_months(read)]
    assert before == afresh(percentiles, engine)

    # An import of an old transcript reaches a settled month: it is read again.
    old = NOW - timedelta(days=40)
    slow = [make_event(timestamp=old, duration_seconds=5_000.0) for _ in range(99)]
    add_events(engine, *slow)
    after = percentiles(engine)
    assert after == afresh(percentiles, engine)
    assert after["code-reviewer"][2] > before["code-reviewer"][2]  # its p99
    assert settled_token(engine) != settled


def test_a_live_write_keeps_the_settled_history_buckets_and_an_older_one_replaces_them(
    engine: Engine, buckets_read: list[dict[str, Any]]
) -> None:
    add_events(engine, *history(70))
    before = trend_lines(engine)
    assert before == afresh(trend_lines, engine)

    # A running session records: only the last days' buckets are read again.
    add_events(engine, make_event(name="debugger", timestamp=NOW, duration_seconds=9_000.0))
    buckets_read.clear()
    live = trend_lines(engine)
    moments = [
        value for read in buckets_read for value in read.values() if isinstance(value, datetime)
    ]
    assert len(buckets_read) == 2 and min(moments) >= NOW - timedelta(days=3)
    assert live == afresh(trend_lines, engine)
    assert live[1].series.invocations[-1] == before[1].series.invocations[-1] + 1

    # A session that started five days ago and still runs is counted in its day.
    add_events(engine, make_event(timestamp=NOW - timedelta(days=5), status=Status.RUNNING))
    after = trend_lines(engine)
    assert after == afresh(trend_lines, engine)
    assert sum(after[0].series.running) == 1 and sum(after[2].series.running) == 1


def test_answers_over_a_range_that_settled_are_kept_across_live_writes(engine: Engine) -> None:
    add_events(engine, *history(70))
    earlier = UsageFilter(since=NOW - timedelta(days=40), until=NOW - timedelta(days=10))

    def previous_period(engine: Engine) -> tuple[Any, ...]:
        with Session(engine) as session:
            return (
                queries.usage_stats(session, filter=earlier),
                queries.stats_by_name(session, filter=earlier, limit=50),
                queries.leaderboard(session, filter=earlier),
            )

    before = previous_period(engine)
    reads: list[str] = []

    def seen(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if "data_version" not in str(clause):
            reads.append(str(clause))

    add_events(engine, make_event(name="debugger", timestamp=NOW))  # a running session's
    event.listen(engine, "before_execute", seen)
    try:
        assert previous_period(engine) == before
        assert reads == []
        # An import of an old transcript reaches the period: its answers are read again.
        add_events(engine, make_event(name="debugger", timestamp=NOW - timedelta(days=20)))
        reads.clear()
        after = previous_period(engine)
        assert reads
    finally:
        event.remove(engine, "before_execute", seen)
    assert after == afresh(previous_period, engine)
    assert after[0].invocations == before[0].invocations + 1


def test_only_writes_reaching_settled_buckets_replace_the_settled_token(engine: Engine) -> None:
    add_events(engine, make_event(timestamp=NOW - timedelta(days=10)))
    settled = settled_token(engine)
    assert settled is not None
    add_events(engine, make_event(timestamp=NOW - timedelta(hours=20)))
    add_events(engine, make_event(timestamp=NOW - timedelta(hours=20), status=Status.RUNNING))
    assert settled_token(engine) == settled  # recent
    add_events(engine, make_event(timestamp=NOW - timedelta(hours=30)))
    assert settled_token(engine) != settled
    settled = settled_token(engine)
    # A running row is in no rollup, but histories count it in its bucket.
    add_events(engine, make_event(timestamp=NOW - timedelta(days=5), status=Status.RUNNING))
    assert settled_token(engine) != settled
    settled = settled_token(engine)
    purge(engine, raw_retention_days=1, rollup_retention_days=None, now=NOW)
    assert settled_token(engine) != settled


def test_the_kept_bins_leave_out_no_run_at_the_edges_of_the_range(engine: Engine) -> None:
    # A range starting mid-hour: its first part of an hour is read from the raw rows.
    since = NOW.replace(minute=20, second=0, microsecond=0) - timedelta(days=10)
    ranged = UsageFilter(since=since, until=NOW + timedelta(hours=1))
    add_events(
        engine,
        make_event(timestamp=since + timedelta(minutes=5), duration_seconds=9_000.0),
        make_event(timestamp=NOW - timedelta(days=5), duration_seconds=10.0),
        make_event(timestamp=NOW - timedelta(hours=1), duration_seconds=20.0),
    )

    def slowest(engine: Engine) -> Any:
        with Session(engine) as session:
            found = queries.stats_by_name(session, filter=ranged, limit=50)
        return [(stats.invocations, stats.p99_duration_seconds) for stats in found.items]

    [(invocations, p99)] = slowest(engine)
    assert invocations == 3 and p99 == pytest.approx(9_000.0, rel=0.01)
    assert slowest(engine) == afresh(slowest, engine)


def test_a_live_write_keeps_the_settled_failure_counts_and_an_older_one_replaces_them(
    engine: Engine,
) -> None:
    failures = [
        make_event(
            name=name,
            timestamp=NOW - timedelta(hours=7 * step),
            status=Status.FAILED,
            error_message=f"error {step % 3}",
        )
        for step in range(200)
        for name in ("code-reviewer", "debugger")
    ]
    add_events(engine, *failures)

    def top_errors(engine: Engine) -> Any:
        with Session(engine) as session:
            overall = queries.usage_stats(session, filter=RANGE, top_errors=2)
            per_name = queries.stats_by_name(session, filter=RANGE, top_errors=1)
        return overall.top_errors, [stats.top_errors for stats in per_name.items]

    assert top_errors(engine) == afresh(top_errors, engine)
    reads: list[dict[str, Any]] = []

    def seen(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if "usage_error_rollup" in str(clause):
            reads.append(dict(multiparams[0]) if multiparams else dict(params))

    add_events(engine, make_event(timestamp=NOW, status=Status.FAILED, error_message="error 1"))
    event.listen(engine, "before_execute", seen)
    try:
        live = top_errors(engine)
    finally:
        event.remove(engine, "before_execute", seen)
    assert reads and not [read for read in reads if settled_months(read)]
    assert live == afresh(top_errors, engine)

    # An import of old failures makes another message the most frequent.
    old = NOW - timedelta(days=30)
    add_events(
        engine,
        *[make_event(timestamp=old, status=Status.FAILED, error_message="late") for _ in range(90)],
    )
    after = top_errors(engine)
    assert after == afresh(top_errors, engine)
    assert after[0][0].error_message == "late" and after[0][0].count == 90
