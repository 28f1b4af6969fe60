"""Which agents are slow: leaderboards by p50 and p95 from the query layer, a minimum sample so
one-run agents do not top rate and time boards, and `stats --sort` by any column."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import Status, UsageEvent
from claude_api.models.filters import LeaderboardMetric, UsageFilter
from claude_api.models.queries import leaderboard, stats_by_name
from tests import expected
from tests.cli_support import SURFACES, Cli, assert_fits, cli, table_row
from tests.factories import BASE_TIME, add_events, make_event

__all__ = ["cli"]

# name -> durations of its finished runs: "steady" is slow on average, "spiky" at its tail.
DURATIONS = {
    "steady": [40.0, 41.0, 42.0, 43.0, 44.0, 45.0],
    "spiky": [5.0, 6.0, 7.0, 8.0, 9.0, 300.0],
    "quick": [1.0, 2.0, 3.0, 4.0, 5.0],
    "once": [900.0],  # slowest of all, but one run says little
}


def runs() -> list[UsageEvent]:
    events = [
        make_event(name=name, timestamp=BASE_TIME + i * timedelta(minutes=7), duration_seconds=d)
        for name, durations in DURATIONS.items()
        for i, d in enumerate(durations)
    ]
    events.append(make_event(name="quick", status=Status.FAILED, duration_seconds=2.5))
    return events


def expected_board(events: list[UsageEvent], percent: int, minimum: int) -> list[str]:
    names = {e.name for e in events}
    counted = {n: [e for e in events if e.name == n] for n in names}
    values = {
        n: expected.nearest_rank(expected.durations(counted[n]), percent)
        for n in names
        if len(counted[n]) >= minimum
    }
    return sorted(values, key=lambda n: (-values[n], n))


@pytest.mark.parametrize(
    ("metric", "percent"), [(LeaderboardMetric.P50, 50), (LeaderboardMetric.P95, 95)]
)
def test_leaderboard_by_percentile_ranks_by_the_stats_percentile(
    engine: Engine, metric: LeaderboardMetric, percent: int
) -> None:
    events = runs()
    add_events(engine, *events)
    with Session(engine) as session:
        board = leaderboard(session, metric=metric, limit=10, min_invocations=2)
        stats = {s.name: s for s in stats_by_name(session, filter=UsageFilter()).items}
    assert [entry.name for entry in board] == expected_board(events, percent, 2)
    for entry in board:
        assert entry.value == getattr(stats[entry.name], f"p{percent}_duration_seconds")
        assert entry.invocations == sum(e.name == entry.name for e in events)
        values = expected.durations(e for e in events if e.name == entry.name)
        assert expected.close_percentile(entry.value, values, percent)
    assert [entry.rank for entry in board] == list(range(1, len(board) + 1))


@pytest.mark.parametrize("surface", SURFACES)
def test_leaderboard_p95_leaves_out_small_samples_by_default(cli: Cli, surface: str) -> None:
    events = runs()
    add_events(cli.engine, *events)
    board = cli.json(surface, "agents", "leaderboard", "--by", "p95")
    assert [entry["name"] for entry in board] == expected_board(events, 95, 5)
    assert "once" not in [entry["name"] for entry in board]
    everyone = cli.json(surface, "agents", "leaderboard", "--by", "p95", "--min-runs", "1")
    assert everyone[0]["name"] == "once"

    printed = cli.ok(surface, "agents", "leaderboard", "--by", "p50").stdout
    assert_fits(printed)
    top = expected_board(events, 50, 5)[0]
    row = table_row(printed, "1")
    assert row[1] == top
    assert row[3] == str(len(DURATIONS[top]))  # the sample size beside the metric
    assert "at least 5 times" in printed
    # Counts are not rates: a usage board still counts every agent.
    usage = cli.json(surface, "agents", "leaderboard", "--by", "usage")
    assert {entry["name"] for entry in usage} == set(DURATIONS)


@pytest.mark.parametrize(
    ("sort", "field"),
    [("p95", "p95DurationSeconds"), ("runs", "invocations"), ("cost", "totalCostUsd")],
)
def test_stats_sort_by_a_column(cli: Cli, sort: str, field: str) -> None:
    add_events(cli.engine, *runs())
    for surface in SURFACES:
        items = cli.json(surface, "agents", "stats", "--sort", sort)
        values = [item[field] for item in items]
        assert values == sorted(values, reverse=True)
    by_name = cli.json("in-process", "agents", "stats", "--sort", "name")
    assert [item["name"] for item in by_name] == sorted(DURATIONS)
    printed = cli.ok("in-process", "agents", "stats", "--sort", sort).stdout
    names = [
        line.split()[0]
        for line in printed.splitlines()
        if line.split()[:1] in [[n] for n in DURATIONS]
    ]
    assert names[: len(DURATIONS)] == [item["name"] for item in items]


def test_stats_sort_rejects_an_unknown_column(cli: Cli) -> None:
    result = cli.run("in-process", "agents", "stats", "--sort", "speed")
    assert result.exit_code == 2
    assert "speed" in result.stderr
