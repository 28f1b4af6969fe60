"""The query layer's statistics: usage_stats, stats_by_name, errors_by_name, leaderboard and
list_names, on SQLite and PostgreSQL, against answers computed in Python from the events."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import InvalidFilter, NotFound
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import LeaderboardMetric, UsageFilter
from claude_api.models.queries import (
    errors_by_name,
    leaderboard,
    list_names,
    list_tasks,
    stats_by_name,
    usage_stats,
)
from tests import expected
from tests.factories import BASE_TIME, add_events, make_event, make_events


def store(engine: Engine, *events: UsageEvent) -> list[UsageEvent]:
    add_events(engine, *events)
    return list(events)


def reviewer_runs() -> list[UsageEvent]:
    """One agent's runs: completed with assorted durations and costs, failures, running."""
    runs = [
        make_event(
            name="reviewer",
            timestamp=BASE_TIME + timedelta(minutes=i),
            duration_seconds=duration,
            cost_usd=cost,
            input_tokens=100 * (i + 1),
            output_tokens=7 * (i + 1),
        )
        for i, (duration, cost) in enumerate([(3.0, 0.1), (1.5, 0.2), (40.0, 0.05), (8.25, 1.0)])
    ]
    runs += [
        make_event(
            name="reviewer",
            status=Status.FAILED,
            error_message=message,
            timestamp=BASE_TIME + timedelta(hours=1, minutes=i),
            duration_seconds=2.0 + i,
        )
        for i, message in enumerate(["timeout", "rate limited", "timeout", "boom"])
    ]
    runs.append(
        make_event(name="reviewer", status=Status.RUNNING, timestamp=BASE_TIME + timedelta(hours=2))
    )
    unmeasured = {"cost_usd": None, "input_tokens": None, "output_tokens": None}
    runs.append(
        make_event(
            name="reviewer",
            duration_seconds=None,
            **unmeasured,
            timestamp=BASE_TIME - timedelta(hours=1),
        )
    )
    return runs


def noise() -> list[UsageEvent]:
    """Rows of other agents and skills that no reviewer query may count."""
    return [
        *make_events(3, name="planner", duration_seconds=99.0),
        make_event(kind="skill", name="pdf", status=Status.FAILED, error_message="timeout"),
        make_event(name="reviewer-2", status=Status.FAILED, error_message="timeout"),
    ]


# ---- usage_stats ------------------------------------------------------------------------------


def test_usage_stats_of_one_agent(engine: Engine) -> None:
    runs = store(engine, *reviewer_runs(), *noise())[: len(reviewer_runs())]
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(name="reviewer"), top_errors=2)

    expected.assert_totals(stats, runs)
    measured = expected.durations(runs)
    assert expected.close_percentile(stats.p50_duration_seconds, measured, 50)
    assert expected.close_percentile(stats.p95_duration_seconds, measured, 95)
    inputs = [e.input_tokens for e in runs if e.input_tokens is not None]
    assert stats.avg_input_tokens == pytest.approx(sum(inputs) / len(inputs))
    assert (stats.kind, stats.name) == (Kind.AGENT, "reviewer")
    assert stats.first_seen_at == min(e.timestamp for e in runs)
    assert stats.last_seen_at == max(e.timestamp for e in runs)
    assert [(e.error_message, e.count) for e in stats.top_errors] == [
        (message, count) for _, _, message, count in expected.top_errors(runs, 2)
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 10, 19, 20, 21, 101])
def test_percentiles_are_nearest_rank(engine: Engine, size: int) -> None:
    rng = random.Random(size)
    runs = [
        make_event(
            status=rng.choice([Status.COMPLETED, Status.FAILED]),
            duration_seconds=rng.choice([0.0, 1.0, 2.5, rng.uniform(0, 100)]),
        )
        for _ in range(size)
    ]
    # Neither running rows nor finished rows without a duration are measured.
    ignored = [make_event(status=Status.RUNNING), make_event(duration_seconds=None)]
    store(engine, *runs, *ignored)
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(name="code-reviewer"))
    measured = [e.duration_seconds for e in runs]
    assert expected.close_percentile(stats.p50_duration_seconds, measured, 50)
    assert expected.close_percentile(stats.p95_duration_seconds, measured, 95)
    assert stats.avg_duration_seconds == pytest.approx(sum(measured) / size)


def test_success_rate_is_none_without_finished_runs(engine: Engine) -> None:
    runs = store(engine, *make_events(3, name="slow", status=Status.RUNNING))
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(name="slow"))
    expected.assert_totals(stats, runs)
    assert (stats.invocations, stats.running, stats.success_rate) == (3, 3, None)
    assert stats.p50_duration_seconds is None and stats.avg_duration_seconds is None


def test_running_rows_count_as_invocations_not_toward_success(engine: Engine) -> None:
    runs = store(
        engine,
        make_event(name="a"),
        make_event(name="a", status=Status.FAILED, error_message="x"),
        *make_events(2, name="a", status=Status.RUNNING),
    )
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(name="a"))
    assert stats.invocations == len(runs)
    assert stats.success_rate == 1 / 2


def test_unknown_name_is_not_found(engine: Engine) -> None:
    store(engine, make_event(name="reviewer"), make_event(kind="skill", name="pdf"))
    with Session(engine) as session:
        with pytest.raises(NotFound):
            usage_stats(session, filter=UsageFilter(name="reviewr"))
        with pytest.raises(NotFound):  # a skill, not an agent
            usage_stats(session, filter=UsageFilter(kind=Kind.AGENT, name="pdf"))
        assert usage_stats(session, filter=UsageFilter(name="pdf")).kind is Kind.SKILL


def test_known_name_quiet_in_range_has_zero_counts(engine: Engine) -> None:
    store(engine, make_event(name="reviewer"))
    quiet = UsageFilter(name="reviewer", since=BASE_TIME + timedelta(days=1))
    with Session(engine) as session:
        stats = usage_stats(session, filter=quiet)
    expected.assert_totals(stats, [])
    assert stats.first_seen_at is None and stats.top_errors == ()


def test_stats_of_an_empty_database(engine: Engine) -> None:
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter())
        page = stats_by_name(session, filter=UsageFilter())
    expected.assert_totals(stats, [])
    assert (stats.kind, stats.name, stats.p95_duration_seconds) == (None, None, None)
    assert page.items == () and not page.has_next and page.next_cursor is None


def test_kind_none_reads_both_tables(engine: Engine) -> None:
    agent = make_events(3, name="shared", cost_usd=1.0)
    skill = make_events(2, kind="skill", name="shared", cost_usd=0.5, status=Status.FAILED)
    store(engine, *agent, *skill, make_event(kind="skill", name="other"))
    with Session(engine) as session:
        both = usage_stats(session, filter=UsageFilter(name="shared"))
        skills = usage_stats(session, filter=UsageFilter(name="shared", kind="skill"))
        everything = usage_stats(session, filter=UsageFilter())
    expected.assert_totals(both, agent + skill)
    assert both.kind is None  # the name is recorded as both
    expected.assert_totals(skills, skill)
    assert skills.kind is Kind.SKILL
    assert everything.invocations == len(agent) + len(skill) + 1


def test_filters_project_model_and_status(engine: Engine) -> None:
    ours = make_events(3, project_id="ours", model="opus")
    theirs = make_events(2, project_id="theirs", model="opus")
    failed = [make_event(project_id="ours", model="haiku", status=Status.FAILED)]
    store(engine, *ours, *theirs, *failed, make_event(project_id=None))
    with Session(engine) as session:

        def count(**fields: object) -> int:
            return usage_stats(session, filter=UsageFilter(**fields)).invocations

        assert count(project_id="ours") == len(ours) + len(failed)
        assert count(project_id="ours", model="opus") == len(ours)
        assert count(model="opus") == len(ours) + len(theirs)
        assert count(project_id="ours", status="failed") == len(failed)
        assert count(project_id="nobody") == 0


def test_range_is_half_open(engine: Engine) -> None:
    since, until = BASE_TIME, BASE_TIME + timedelta(hours=1)
    inside = [make_event(timestamp=since), make_event(timestamp=until - timedelta(microseconds=1))]
    outside = [make_event(timestamp=since - timedelta(microseconds=1)), make_event(timestamp=until)]
    store(engine, *inside, *outside)
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(since=since, until=until))
    expected.assert_totals(stats, inside)
    assert stats.first_seen_at == since and stats.last_seen_at == until - timedelta(microseconds=1)


def test_top_errors_ties_are_broken_by_message(engine: Engine) -> None:
    messages = ["zeta"] * 3 + ["beta"] * 2 + ["alpha"] * 2 + ["gamma"]
    runs = [make_event(status=Status.FAILED, error_message=m) for m in messages]
    runs.append(make_event(status=Status.FAILED, error_message=None))  # no message: not counted
    store(engine, *runs)
    with Session(engine) as session:
        stats = usage_stats(session, filter=UsageFilter(name="code-reviewer"), top_errors=3)
        none = usage_stats(session, filter=UsageFilter(name="code-reviewer"), top_errors=0)
    assert [(e.error_message, e.count) for e in stats.top_errors] == [
        ("zeta", 3),
        ("alpha", 2),
        ("beta", 2),
    ]
    assert none.top_errors == ()


# ---- stats_by_name ----------------------------------------------------------------------------

NAMES = ["alpha", "Alpha", "alpha-1", "alpha_1", "alpha1", "beta", "Zeta", "zeta", "élan", "ö"]


def many_names() -> list[UsageEvent]:
    rng = random.Random(7)
    events = []
    for i, name in enumerate(NAMES):
        for kind in ["agent", "skill"] if i % 3 == 0 else ["agent"]:
            for j in range(rng.randint(1, 4)):
                status = rng.choice(list(Status))
                events.append(
                    make_event(
                        kind=kind,
                        name=name,
                        status=status,
                        timestamp=BASE_TIME + timedelta(minutes=j),
                        duration_seconds=rng.uniform(1, 50) if status != "running" else None,
                        error_message=rng.choice(["x", "y"]) if status == "failed" else None,
                    )
                )
    return events


@pytest.mark.parametrize("limit", [1, 3, 4, 100])
def test_stats_by_name_walks_every_page(engine: Engine, limit: int) -> None:
    events = store(engine, *many_names())
    seen = []
    after = None
    with Session(engine) as session:
        while True:
            page = stats_by_name(session, filter=UsageFilter(), limit=limit, after=after)
            assert len(page.items) <= limit
            seen.extend(page.items)
            if not page.has_next:
                assert page.next_cursor is None
                break
            after = page.next_cursor
    keys = [(s.name, s.kind.value) for s in seen]
    assert keys == sorted({(e.name, e.kind.value) for e in events})  # code point order, no gaps
    for stats in seen:
        mine = [e for e in events if (e.kind, e.name) == (stats.kind, stats.name)]
        expected.assert_totals(stats, mine)
        assert expected.close_percentile(stats.p50_duration_seconds, expected.durations(mine), 50)
        assert [(e.error_message, e.count) for e in stats.top_errors] == [
            (message, count) for _, _, message, count in expected.top_errors(mine, 5)
        ]


def test_stats_by_name_filters_by_kind(engine: Engine) -> None:
    events = store(engine, *many_names())
    with Session(engine) as session:
        page = stats_by_name(session, filter=UsageFilter(kind="skill"), limit=100)
    assert [s.name for s in page.items] == sorted({e.name for e in events if e.kind == "skill"})
    assert {s.kind for s in page.items} == {Kind.SKILL}


@pytest.mark.parametrize(
    "cursor", ["garbage", "", "W10", "WyJzdGF0c19ieV9uYW1lIiwicm9ib3QiLCJhIl0"]
)
def test_stats_by_name_rejects_foreign_cursors(engine: Engine, cursor: str) -> None:
    store(engine, make_event(task_id="t1"), make_event(task_id="t2"))
    with Session(engine) as session:
        tasks_cursor = list_tasks(session, filter=UsageFilter(), limit=1).next_cursor
        assert tasks_cursor is not None
        for bad in [cursor, tasks_cursor]:
            with pytest.raises(InvalidFilter) as error:
                stats_by_name(session, filter=UsageFilter(), after=bad)
            assert error.value.field == "after"


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_stats_by_name_rejects_bad_limits(engine: Engine, limit: int) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as error:
        stats_by_name(session, filter=UsageFilter(), limit=limit)
    assert error.value.field == "limit"


# ---- errors_by_name ---------------------------------------------------------------------------


def test_errors_by_name_counts_failures_across_names(engine: Engine) -> None:
    failures = [
        make_event(kind=kind, name=name, status=Status.FAILED, error_message=message)
        for kind, name, message, times in [
            ("agent", "b", "timeout", 3),
            ("skill", "a", "timeout", 3),
            ("agent", "a", "timeout", 3),
            ("agent", "a", "boom", 1),
            ("skill", "pdf", "bad file", 2),
        ]
        for _ in range(times)
    ]
    events = store(engine, *failures, make_event(name="a", error_message="ignored: completed"))
    with Session(engine) as session:
        top = errors_by_name(session, filter=UsageFilter(), limit=4)
        agents = errors_by_name(session, filter=UsageFilter(kind="agent"), limit=10)
    assert [(e.kind.value, e.name, e.error_message, e.count) for e in top] == (
        expected.top_errors(events, 4)
    )
    assert [(e.name, e.error_message) for e in agents] == [
        (name, message)
        for kind, name, message, _ in expected.top_errors(events, 10)
        if kind == "agent"
    ]


# ---- leaderboard ------------------------------------------------------------------------------


def test_leaderboard_ties_are_broken_by_name_then_kind(engine: Engine) -> None:
    counts = {
        ("agent", "b"): 3,
        ("agent", "a"): 3,
        ("skill", "a"): 3,
        ("agent", "c"): 5,
        ("agent", "d"): 1,
    }
    store(engine, *[make_event(kind=k, name=n) for (k, n), c in counts.items() for _ in range(c)])
    with Session(engine) as session:
        board = leaderboard(session, filter=UsageFilter(), metric=LeaderboardMetric.USAGE)
        top_two = leaderboard(session, filter=UsageFilter(), metric="usage", limit=2)
    order = sorted(counts, key=lambda key: (-counts[key], key[1], key[0]))
    assert [(e.kind.value, e.name) for e in board] == order
    assert [e.rank for e in board] == list(range(1, len(order) + 1))
    assert [e.value for e in board] == [counts[key] for key in order]
    assert [(e.kind.value, e.name) for e in top_two] == order[:2]


def test_leaderboard_min_invocations_keeps_one_run_off_the_success_board(engine: Engine) -> None:
    lucky = [make_event(name="lucky")]
    steady = [*make_events(9, name="steady"), make_event(name="steady", status=Status.FAILED)]
    store(engine, *lucky, *steady, make_event(name="idle", status=Status.RUNNING))
    with Session(engine) as session:

        def board(minimum: int) -> list[tuple[str, float]]:
            entries = leaderboard(
                session, filter=UsageFilter(), metric="success_rate", min_invocations=minimum
            )
            return [(e.name, e.value) for e in entries]

        # "idle" has no finished run: no success rate, never on the board.
        assert board(1) == [("lucky", 1.0), ("steady", 9 / 10)]
        assert board(2) == [("steady", 9 / 10)]
        assert board(11) == []


def board_events() -> list[UsageEvent]:
    rng = random.Random(3)
    events = []
    for name in ["ant", "bee", "cat", "dog", "eel", "fox"]:
        for _ in range(rng.randint(1, 6)):
            status = rng.choice([Status.COMPLETED, Status.COMPLETED, Status.FAILED])
            events.append(
                make_event(
                    name=name,
                    status=status,
                    duration_seconds=rng.uniform(1, 60),
                    cost_usd=rng.choice([None, rng.uniform(0, 2)]),
                    input_tokens=rng.randint(0, 5000),
                    output_tokens=rng.randint(0, 900),
                )
            )
    events.append(make_event(kind="skill", name="ant", cost_usd=None, duration_seconds=None))
    events.append(make_event(name="gnu", status=Status.RUNNING))
    return events


def metric_value(metric: LeaderboardMetric, events: list[UsageEvent]) -> float | None:
    totals = expected.totals(events)
    if metric is LeaderboardMetric.COST:
        return totals["total_cost_usd"] if totals["avg_cost_usd"] is not None else None
    if metric in (LeaderboardMetric.P50, LeaderboardMetric.P95):
        percent = 50 if metric is LeaderboardMetric.P50 else 95
        return expected.nearest_rank(expected.durations(events), percent)
    return {
        LeaderboardMetric.USAGE: totals["invocations"],
        LeaderboardMetric.SUCCESS_RATE: totals["success_rate"],
        LeaderboardMetric.DURATION: totals["avg_duration_seconds"],
        # Unknown (not ranked) when none of the invocations reports tokens.
        LeaderboardMetric.TOKENS: totals["total_tokens"],
    }[metric]


@pytest.mark.parametrize("metric", list(LeaderboardMetric))
def test_leaderboard_ranks_by_each_metric(engine: Engine, metric: LeaderboardMetric) -> None:
    events = store(engine, *board_events())
    groups: dict[tuple[str, str], list[UsageEvent]] = {}
    for event in events:
        groups.setdefault((event.kind.value, event.name), []).append(event)
    values = {key: metric_value(metric, group) for key, group in groups.items()}
    ranked = sorted(
        (key for key, value in values.items() if value is not None),
        key=lambda key: (-values[key], key[1], key[0]),
    )
    with Session(engine) as session:
        board = leaderboard(session, filter=UsageFilter(), metric=metric, limit=5)
    assert [(e.kind.value, e.name) for e in board] == ranked[:5]
    # Percentiles come from the rollups' sketch bins: within 1% of the exact value.
    sketched = metric in (LeaderboardMetric.P50, LeaderboardMetric.P95)
    assert [e.value for e in board] == pytest.approx(
        [values[key] for key in ranked[:5]], rel=0.01 if sketched else 1e-6
    )
    assert all(e.metric is metric for e in board)
    assert [e.invocations for e in board] == [len(groups[key]) for key in ranked[:5]]


def test_leaderboard_honours_the_filter(engine: Engine) -> None:
    store(
        engine,
        *make_events(3, name="a"),
        *make_events(2, kind="skill", name="s"),
        *make_events(4, name="b", project_id="p"),
    )
    with Session(engine) as session:
        skills = leaderboard(session, filter=UsageFilter(kind=Kind.SKILL))
        project = leaderboard(session, filter=UsageFilter(project_id="p"))
        empty = leaderboard(session, filter=UsageFilter(since=BASE_TIME + timedelta(days=1)))
    assert [(e.kind, e.name, e.value) for e in skills] == [(Kind.SKILL, "s", 2)]
    assert [(e.name, e.value) for e in project] == [("b", 4)]
    assert empty == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"metric": "speed"}, "metric"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"min_invocations": -1}, "min_invocations"),
    ],
)
def test_leaderboard_rejects_bad_arguments(engine: Engine, arguments: dict, field: str) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as error:
        leaderboard(session, filter=UsageFilter(), **arguments)
    assert error.value.field == field


def test_usage_stats_rejects_bad_top_errors(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as error:
        usage_stats(session, filter=UsageFilter(), top_errors=-1)
    assert error.value.field == "top_errors"


# ---- list_names -------------------------------------------------------------------------------


def test_list_names(engine: Engine) -> None:
    events = store(engine, *many_names(), make_event(kind="skill", name="only-skill"))
    with Session(engine) as session:
        everything = list_names(session)
        agents = list_names(session, kind=Kind.AGENT)
        skills = list_names(session, kind="skill")
    assert everything == sorted({e.name for e in events})
    assert agents == sorted({e.name for e in events if e.kind is Kind.AGENT})
    assert skills == sorted({e.name for e in events if e.kind is Kind.SKILL})


def test_list_names_of_an_empty_database(engine: Engine) -> None:
    with Session(engine) as session:
        assert list_names(session) == []
