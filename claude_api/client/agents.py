"""`claude-api agents`: statistics, leaderboards and histories of agents."""

from __future__ import annotations

from typing import Annotated

import typer

from claude_api.client import usage
from claude_api.client.options import (
    JsonOption,
    MetricChoice,
    PeriodChoice,
    PeriodOption,
    ProjectOption,
    SinceOption,
    TzOption,
    UntilOption,
    UrlOption,
    usage_filter,
)

KIND = "agent"

agents_app = typer.Typer(
    help="Agents: their statistics, leaderboards and history.",
    no_args_is_help=True,
)


@agents_app.command("stats")
def agents_stats(
    agent_name: Annotated[
        str | None,
        typer.Argument(
            metavar="AGENT_NAME", help="The agent; without one, every agent.", show_default=False
        ),
    ] = None,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    sort: usage.SortOption = None,
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the statistics of one agent, or a table of every agent.

    Runs, success rate, cost (and how many runs have none), durations (mean, median, p95),
    tokens (input, output, cache write, cache read, total) and the top errors.

    Example: claude-api agents stats code-reviewer --since 2026-05-01 --tz Europe/Paris
    """
    scope = usage_filter(project=project, since=since, until=until, tz=tz)
    usage.show_stats(KIND, agent_name, filter=scope, sort=sort, url=url, json_output=json_output)


@agents_app.command("leaderboard")
def agents_leaderboard(
    by: Annotated[MetricChoice, typer.Option("--by", help="What to rank by.")] = MetricChoice.USAGE,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many.")] = 10,
    min_invocations: Annotated[
        int | None,
        typer.Option(
            "--min-runs",
            "--min-invocations",
            min=0,
            help="Leave out agents run fewer times (default: "
            f"{usage.RATED_MIN_RUNS} for success-rate, duration, p50 and p95, else 1).",
            show_default=False,
        ),
    ] = None,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the top agents by usage, cost, success rate, duration or tokens.

    duration ranks by the average time, p50 and p95 by that percentile of the times: the
    slowest first. Rates and times need a sample: agents run fewer than --min-runs times are
    left out. Ties are broken by name.

    Example: claude-api agents leaderboard --by cost --limit 5 --since 2026-05-01
    """
    usage.show_leaderboard(
        KIND,
        by=by,
        limit=limit,
        min_invocations=min_invocations,
        filter=usage_filter(project=project, since=since, until=until, tz=tz),
        url=url,
        json_output=json_output,
    )


@agents_app.command("history")
def agents_history(
    agent_name: Annotated[
        str, typer.Argument(metavar="AGENT_NAME", help="The agent.", show_default=False)
    ],
    period: PeriodOption = PeriodChoice.DAY,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show an agent's invocations per day, week or month, with a sparkline of the trend.

    Empty buckets included; by default the last 30 days, 12 weeks or 12 months.

    Example: claude-api agents history code-reviewer --period week --tz Europe/Paris
    """
    usage.show_history(
        KIND,
        agent_name,
        period=period,
        filter=usage_filter(project=project, since=since, until=until, tz=tz),
        url=url,
        json_output=json_output,
    )
