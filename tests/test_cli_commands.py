"""`claude-api agents|skills stats|leaderboard|history` and `analytics report`: the same tables
and JSON over HTTP and in-process, with the query layer's numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.client import output
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models import queries
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from tests.cli_support import SURFACES, Cli, assert_fits, assert_matches, cli, table_row
from tests.factories import BASE_TIME, add_events, make_event

__all__ = ["cli"]

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def scenario() -> list[UsageEvent]:
    """Agents and skills over a few days of May 2026, with failures and a running invocation."""
    reviewer = [
        make_event(
            timestamp=BASE_TIME,
            duration_seconds=10,
            cost_usd=0.25,
            project_id="web",
            cache_read_tokens=40_000_000,
            cache_creation_tokens=9_000,
        ),
        make_event(
            timestamp=BASE_TIME + HOUR,
            duration_seconds=20,
            cost_usd=0.5,
            project_id="web",
            cache_read_tokens=2_500_000_000,
        ),
        make_event(timestamp=BASE_TIME + DAY, duration_seconds=65, cost_usd=1.0, project_id="api"),
        make_event(
            timestamp=BASE_TIME + 2 * DAY,
            status=Status.FAILED,
            duration_seconds=5,
            cost_usd=0.1,
            error_message="lint crashed",
            project_id="web",
        ),
        make_event(timestamp=BASE_TIME + 3 * DAY, status=Status.RUNNING),
    ]
    others = [
        make_event(name="planner", timestamp=BASE_TIME - DAY, duration_seconds=90, cost_usd=2.0),
        make_event(name="planner", timestamp=BASE_TIME + 2 * HOUR, cost_usd=0.004),
        make_event(name="code-writer", timestamp=BASE_TIME + 4 * HOUR, input_tokens=250_000),
    ]
    skills = [
        make_event(
            kind="skill",
            name="pdf",
            parent_id=reviewer[0].event_id,
            timestamp=BASE_TIME + timedelta(seconds=s),
            duration_seconds=2.5,
            cost_usd=0.01,
        )
        for s in (1, 2)
    ]
    skills += [
        make_event(
            kind="skill",
            name="pdf",
            timestamp=BASE_TIME + DAY,
            status=Status.FAILED,
            error_message="bad file",
        ),
        make_event(kind="skill", name="xlsx", timestamp=BASE_TIME + 5 * DAY, duration_seconds=0.4),
    ]
    return reviewer + others + skills


@pytest.fixture
def data(engine: Engine) -> list[UsageEvent]:
    events = scenario()
    add_events(engine, *events)
    return events


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize("options", [[], ["--project", "web"], ["--since", "2026-05-02"]])
def test_agents_stats_of_one_agent(cli: Cli, engine: Engine, options: list[str]) -> None:
    scope = UsageFilter(kind=Kind.AGENT, name="code-reviewer")
    if options[:1] == ["--project"]:
        scope = scope.replace(project_id="web")
    if options[:1] == ["--since"]:
        scope = scope.replace(since=datetime(2026, 5, 2, tzinfo=UTC))
    with Session(engine) as session:
        stats = queries.usage_stats(session, filter=scope)

    printed = cli.both("agents", "stats", "code-reviewer", *options)
    assert printed.startswith("code-reviewer (agent)")
    assert table_row(printed, "invocations")[1].startswith(f"{stats.invocations} (")
    assert table_row(printed, "success rate")[1] == output.percent(stats.success_rate)
    assert table_row(printed, "total cost")[1] == output.money(stats.total_cost_usd)
    assert table_row(printed, "p95 duration")[1] == output.duration(stats.p95_duration_seconds)
    assert table_row(printed, "median duration")[1] == output.duration(stats.p50_duration_seconds)
    for error in stats.top_errors:
        assert table_row(printed, str(error.count))[1] == error.error_message
    assert_fits(printed)

    answer = cli.both_json("agents", "stats", "code-reviewer", *options)
    assert_matches(answer, stats)


@pytest.mark.usefixtures("data")
def test_the_numbers_in_the_stats_of_code_reviewer(cli: Cli) -> None:
    """Spelled out once from the scenario, with the units a reader sees."""
    printed = cli.both("agents", "stats", "code-reviewer")
    assert table_row(printed, "invocations")[1] == "5 (3 completed, 1 failed, 1 running)"
    assert table_row(printed, "success rate")[1] == "75.0%"
    assert table_row(printed, "total cost")[1] == "$1.85"
    assert table_row(printed, "unpriced")[1] == "1 of 5 without a cost"  # the running one
    assert table_row(printed, "input tokens")[1] == "4,000"
    assert table_row(printed, "output tokens")[1] == "800"
    assert table_row(printed, "cache write tokens")[1] == "9,000"
    assert table_row(printed, "cache read tokens")[1] == "2,540,000,000"
    assert table_row(printed, "total tokens")[1] == "2,540,013,800"
    assert table_row(printed, "average duration")[1] == "25.0s"
    assert table_row(printed, "p95 duration")[1] == "1m 05s"
    assert table_row(printed, "first seen")[1] == "2026-05-01 10:00 UTC"
    assert table_row(printed, "1")[1] == "lint crashed"


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize("kind", [Kind.AGENT, Kind.SKILL])
def test_stats_without_a_name_list_every_one(cli: Cli, engine: Engine, kind: Kind) -> None:
    with Session(engine) as session:
        page = queries.stats_by_name(session, filter=UsageFilter(kind=kind), limit=1000)

    printed = cli.both(f"{kind}s", "stats")
    performance, tokens = printed.split("\nTokens")
    unpriced = any(stats.unpriced_invocations for stats in page.items)
    for stats in page.items:
        assert table_row(performance, str(stats.name)) == [
            str(stats.name),
            output.count(stats.invocations),
            output.percent(stats.success_rate),
            output.money(stats.total_cost_usd),
            *([output.count(stats.unpriced_invocations)] if unpriced else []),
            output.duration(stats.avg_duration_seconds),
            output.duration(stats.p95_duration_seconds),
        ]
        assert table_row(tokens, str(stats.name)) == [
            str(stats.name),
            output.tokens(stats.input_tokens),
            output.tokens(stats.output_tokens),
            output.tokens(stats.cache_creation_tokens),
            output.tokens(stats.cache_read_tokens),
            output.tokens(stats.total_tokens),
        ]
    assert ("Unpriced" in performance) == unpriced
    assert_fits(printed)

    answer = cli.both_json(f"{kind}s", "stats")
    assert_matches(answer, list(page.items))


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize("kind", [Kind.AGENT, Kind.SKILL])
@pytest.mark.parametrize("metric", list(LeaderboardMetric))
def test_leaderboard_by_every_metric(
    cli: Cli, engine: Engine, kind: Kind, metric: LeaderboardMetric
) -> None:
    # The CLI leaves out names run fewer than 5 times from boards of rates and times.
    rated = {
        LeaderboardMetric.SUCCESS_RATE,
        LeaderboardMetric.DURATION,
        LeaderboardMetric.P50,
        LeaderboardMetric.P95,
    }
    with Session(engine) as session:
        entries = queries.leaderboard(
            session,
            filter=UsageFilter(kind=kind),
            metric=metric,
            min_invocations=5 if metric in rated else 1,
        )
    by = metric.value.replace("_", "-")

    answer = cli.both_json(f"{kind}s", "leaderboard", "--by", by)
    assert_matches(answer, entries)

    printed = cli.both(f"{kind}s", "leaderboard", "--by", by)
    unit = {
        LeaderboardMetric.USAGE: output.count,
        LeaderboardMetric.COST: output.money,
        LeaderboardMetric.SUCCESS_RATE: output.percent,
        LeaderboardMetric.DURATION: output.duration,
        LeaderboardMetric.P50: output.duration,
        LeaderboardMetric.P95: output.duration,
        LeaderboardMetric.TOKENS: output.tokens,
    }[metric]
    for entry in entries:
        row = table_row(printed, str(entry.rank))
        assert row[1:3] == [entry.name, unit(entry.value)]
    assert_fits(printed)


@pytest.mark.usefixtures("data")
def test_leaderboard_limit_and_filters(cli: Cli, engine: Engine) -> None:
    scope = UsageFilter(kind=Kind.AGENT, project_id="web", since=BASE_TIME)
    with Session(engine) as session:
        entries = queries.leaderboard(
            session, filter=scope, metric=LeaderboardMetric.COST, limit=1, min_invocations=2
        )
    answer = cli.both_json(
        "agents", "leaderboard", "--by", "cost", "--limit", "1", "--min-invocations", "2",
        "--project", "web", "--since", BASE_TIME.isoformat(),
    )  # fmt: skip
    assert_matches(answer, entries)
    assert [entry["name"] for entry in answer] == ["code-reviewer"]


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize(
    ("period", "since", "until"),
    [
        (Period.DAY, "2026-04-29", "2026-05-05"),
        (Period.WEEK, "2026-04-13", "2026-05-18"),
        (Period.MONTH, "2026-01-01", "2026-07-01"),
    ],
)
def test_history_per_period(
    cli: Cli, engine: Engine, period: Period, since: str, until: str
) -> None:
    tz = "Europe/Paris"
    midnight = [
        datetime.combine(date.fromisoformat(d), time(), ZoneInfo(tz)) for d in (since, until)
    ]
    scope = UsageFilter(
        kind=Kind.AGENT, name="code-reviewer", since=midnight[0], until=midnight[1], tz=tz
    )
    with Session(engine) as session:
        history = queries.usage_by_period(session, filter=scope, period=period)
    options = ["--period", period.value, "--since", since, "--until", until, "--tz", tz]

    answer = cli.both_json("agents", "history", "code-reviewer", *options)
    assert_matches(answer, history)

    printed = cli.both("agents", "history", "code-reviewer", *options)
    runs = [bucket.invocations for bucket in history.buckets]
    assert output.sparkline(runs) in printed
    for bucket in history.buckets:
        label = bucket.period_start.isoformat()
        label = label[:7] if period is Period.MONTH else label
        row = table_row(printed, label)
        assert row[1:3] == [output.count(bucket.invocations), output.percent(bucket.success_rate)]
        assert row[4] == output.money(bucket.total_cost_usd)
    assert_fits(printed)


@pytest.mark.usefixtures("data")
def test_skills_history_defaults_to_the_last_30_days(cli: Cli) -> None:
    # Each run ends its range at its own "now", so only the buckets are compared.
    answers = [cli.json(surface, "skills", "history", "pdf") for surface in SURFACES]
    buckets = [[(b["periodStart"], b["invocations"]) for b in a["buckets"]] for a in answers]
    assert buckets[0] == buckets[1] and len(buckets[0]) == 30
    assert answers[0]["period"] == "DAY" and answers[0]["kind"] == "SKILL"
    printed = cli.ok("in-process", "skills", "history", "pdf").stdout
    assert printed.startswith(f"pdf (skill): invocations per day, {buckets[0][0][0]} to ")


@pytest.mark.usefixtures("data")
@pytest.mark.parametrize(
    ("period", "on", "options"),
    [
        (Period.DAY, date(2026, 5, 1), []),
        (Period.WEEK, date(2026, 5, 1), ["--kind", "agent"]),
        (Period.MONTH, date(2026, 5, 20), ["--project", "web", "--tz", "America/New_York"]),
    ],
)
def test_analytics_report(
    cli: Cli, engine: Engine, period: Period, on: date, options: list[str]
) -> None:
    scope = UsageFilter(
        kind=Kind.AGENT if "agent" in options else None,
        project_id="web" if "web" in options else None,
        tz=options[-1] if "--tz" in options else "UTC",
    )
    with Session(engine) as session:
        report = queries.usage_report(session, period=period, on=on, filter=scope)
    arguments = ["analytics", "report", "--period", period.value, "--date", on.isoformat()]

    answer = cli.both_json(*arguments, *options)
    # Beside the report, the budgets and open alerts covering it: none here.
    assert (answer.pop("budgets"), answer.pop("openAlerts")) == ([], [])
    assert_matches(answer, report)

    printed = cli.both(*arguments, *options)
    totals, previous = report.totals, report.previous_totals
    assert table_row(printed, "Invocations")[1:3] == [
        output.count(totals.invocations),
        output.count(previous.invocations),
    ]
    assert table_row(printed, "Total cost")[1:3] == [
        output.money(totals.total_cost_usd),
        output.money(previous.total_cost_usd),
    ]
    assert table_row(printed, "Success rate")[1] == output.percent(totals.success_rate)
    for row in (*report.agents, *report.skills):
        assert table_row(printed, row.name)[1:3] == [
            output.count(row.invocations),
            output.percent(row.success_rate),
        ]
    assert_fits(printed)


@pytest.mark.usefixtures("data")
def test_the_report_of_the_first_of_may(cli: Cli) -> None:
    """Spelled out once from the scenario: May 1st against April 30th."""
    printed = cli.both("analytics", "report", "--date", "2026-05-01")
    assert printed.startswith("Day 2026-05-01 (UTC), compared with 30 Apr")
    assert table_row(printed, "Invocations")[1:4] == ["6", "1", "+5 (+500.0%)"]
    assert table_row(printed, "Total cost")[1:3] == ["$1.02", "$2.00"]
    assert table_row(printed, "code-reviewer")[1:3] == ["2", "100.0%"]
    assert table_row(printed, "pdf")[1:3] == ["2", "100.0%"]


def test_an_empty_database_prints_empty_answers(cli: Cli) -> None:
    for surface in ("http", "in-process"):
        result = cli.ok(surface, "agents", "stats")
        assert result.stdout == "" and "no agent has been recorded yet" in result.stderr
        assert "claude-api demo" in result.stderr
        assert cli.json(surface, "skills", "leaderboard") == []
        report = cli.json(surface, "analytics", "report")
        assert report["totals"]["invocations"] == 0
