"""`claude-api skills`: statistics, leaderboards and histories of skills."""

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

KIND = "skill"

skills_app = typer.Typer(
    help="Skills: their statistics, leaderboards and history.",
    no_args_is_help=True,
)


@skills_app.command("stats")
def skills_stats(
    skill_name: Annotated[
        str | None,
        typer.Argument(
            metavar="SKILL_NAME", help="The skill; without one, every skill.", show_default=False
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
    """Show the statistics of one skill, or a table of every skill.

    Runs, success rate, cost (and how many runs have none), durations (mean, median, p95),
    tokens (input, output, cache write, cache read, total) and the top errors.

    Example: claude-api skills stats pdf --since 2026-05-01 --tz Europe/Paris
    """
    scope = usage_filter(project=project, since=since, until=until, tz=tz)
    usage.show_stats(KIND, skill_name, filter=scope, sort=sort, url=url, json_output=json_output)


@skills_app.command("leaderboard")
def skills_leaderboard(
    by: Annotated[MetricChoice, typer.Option("--by", help="What to rank by.")] = MetricChoice.USAGE,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many.")] = 10,
    min_invocations: Annotated[
        int | None,
        typer.Option(
            "--min-runs",
            "--min-invocations",
            min=0,
            help="Leave out skills run fewer times (default: "
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
    """Show the top skills by usage, cost, success rate, duration or tokens.

    duration ranks by the average time, p50 and p95 by that percentile of the times: the
    slowest first. Rates and times need a sample: skills run fewer than --min-runs times are
    left out. Ties are broken by name.

    Example: claude-api skills leaderboard --by cost --limit 5 --since 2026-05-01
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


@skills_app.command("history")
def skills_history(
    skill_name: Annotated[
        str, typer.Argument(metavar="SKILL_NAME", help="The skill.", show_default=False)
    ],
    period: PeriodOption = PeriodChoice.DAY,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a skill's invocations per day, week or month, with a sparkline of the trend.

    Empty buckets included; by default the last 30 days, 12 weeks or 12 months.

    Example: claude-api skills history pdf --period week --tz Europe/Paris
    """
    usage.show_history(
        KIND,
        skill_name,
        period=period,
        filter=usage_filter(project=project, since=since, until=until, tz=tz),
        url=url,
        json_output=json_output,
    )
