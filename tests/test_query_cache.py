"""Cached answers: kept while the data version is unchanged, never served after a write (in
this process or another), a purge or a rolled-back batch, and never for answers that depend on
the current time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.models import data_version, queries
from claude_api.models.db import write_engine
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.models.gateway import caches_answers, mark_uncacheable, recording
from claude_api.models.results import LeaderboardEntry, UsageStats
from claude_api.models.retention import purge
from claude_api.models.write import store_events
from tests.factories import (
    BASE_TIME,
    add_events,
    make_event,
    make_events,
    write_demo_from_another_process,
)


def leaderboard(engine: Engine) -> list[LeaderboardEntry]:
    with Session(engine) as session:
        return queries.leaderboard(session, metric=LeaderboardMetric.USAGE)


def stats(engine: Engine) -> UsageStats:
    with Session(engine) as session:
        return queries.usage_stats(session, filter=UsageFilter())


def version(engine: Engine) -> int | None:
    with Session(engine) as session:
        return data_version.current(session)


def test_an_answer_is_kept_until_the_next_write(engine: Engine) -> None:
    add_events(engine, *make_events(3))
    first = stats(engine)
    assert first.invocations == 3
    assert stats(engine) is first  # the same answer, not computed again
    add_events(engine, make_event(name="debugger"))
    assert stats(engine).invocations == 4
    assert [entry.name for entry in leaderboard(engine)] == ["code-reviewer", "debugger"]


def test_every_write_path_changes_the_version_and_a_rejected_batch_does_not(
    engine: Engine,
) -> None:
    before = version(engine)
    add_events(engine, *make_events(2))
    after_write = version(engine)
    assert after_write not in (None, before)
    with pytest.raises(RuntimeError), Session(write_engine(engine)) as session:
        store_events(session, [make_event()])
        raise RuntimeError("the caller fails before committing")
    assert version(engine) == after_write
    with Session(write_engine(engine)) as session:
        store_events(session, [])  # nothing to write: nothing changed
        session.commit()
    assert version(engine) == after_write


def test_a_purge_changes_the_version_and_a_dry_run_does_not(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    written = version(engine)
    now = BASE_TIME + timedelta(days=200)
    purge(engine, raw_retention_days=90, rollup_retention_days=None, now=now, dry_run=True)
    assert version(engine) == written
    result = purge(engine, raw_retention_days=90, rollup_retention_days=None, now=now)
    assert result.agent_rows == 2
    assert version(engine) != written


def test_a_write_from_another_process_is_seen(engine: Engine, database_url: str) -> None:
    add_events(engine, *make_events(2))
    assert stats(engine).invocations == 2
    write_demo_from_another_process(database_url)
    assert stats(engine).invocations == 7


def test_answers_that_read_the_clock_and_fresh_computations_are_not_kept(
    engine: Engine,
) -> None:
    add_events(engine, *make_events(2))
    history = UsageFilter(since=BASE_TIME - timedelta(days=1))
    with Session(engine) as session:
        ask = lambda: queries.usage_by_period(session, filter=history, period=Period.DAY)  # noqa: E731
        assert ask() is not ask()
        assert sum(bucket.invocations for bucket in ask().buckets) == 2
        fixed = UsageFilter(since=history.since, until=BASE_TIME + timedelta(days=1))
        pinned = queries.usage_by_period(session, filter=fixed, period=Period.DAY)
        assert queries.usage_by_period(session, filter=fixed, period=Period.DAY) is pinned
        report = queries.usage_report(session, period=Period.MONTH, on=BASE_TIME.date())
        assert report.totals.invocations == 2
        assert queries.usage_report(session, period=Period.MONTH, on=BASE_TIME.date()) is report
    kept = stats(engine)
    with queries.computing_afresh():
        afresh = stats(engine)
    with queries.reading_raw_rows():
        raw = stats(engine)
    assert afresh is not kept and raw is not kept
    assert afresh == kept
    assert raw.invocations == kept.invocations


def test_a_recording_names_the_version_of_kept_answers_only(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    with recording() as kept:
        stats(engine)
        leaderboard(engine)
    assert kept.version == version(engine) is not None
    with recording() as clock, Session(engine) as session:
        stats(engine)
        queries.usage_by_period(session, filter=UsageFilter(), period=Period.DAY)
    assert clock.version is None
    with recording() as afresh, queries.computing_afresh():
        stats(engine)
    assert afresh.version is None
    with recording() as unkept, Session(engine) as session:
        queries.list_tasks(session, filter=UsageFilter())
        mark_uncacheable()  # what a caller does for a function that caches no answers
    assert not unkept.all_cached and unkept.version is None
    assert not caches_answers(queries.list_tasks) and caches_answers(queries.leaderboard)


def test_a_cached_list_is_a_callers_own(engine: Engine) -> None:
    add_events(engine, *make_events(2), make_event(name="debugger"))
    first = leaderboard(engine)
    assert [entry.name for entry in first] == ["code-reviewer", "debugger"]
    first.clear()  # what one caller does with its answer is its own business
    first_names = names(engine)
    first_names.append("nobody")
    again = leaderboard(engine)
    assert [entry.name for entry in again] == ["code-reviewer", "debugger"]
    assert again is not first
    assert names(engine) == ["code-reviewer", "debugger"]


def names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return queries.list_names(session)
