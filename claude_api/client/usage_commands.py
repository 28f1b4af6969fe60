"""`claude-api agents` and `claude-api skills`: statistics, leaderboards and histories.

Agents and skills answer the same questions, so one definition makes both command groups; only
the kind, its words and its example names differ.
"""

# No `from __future__ import annotations`: Typer reads the parameters' annotations, which name
# this factory's locals (the metavar and help of each kind).

from dataclasses import dataclass
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


@dataclass(frozen=True)
class KindWords:
    """How the commands of one kind speak of it."""

    kind: str  # "agent" or "skill", as the query layer names it
    plural: str
    article: str  # "an agent", "a skill"
    example: str  # a name to show in the examples


def usage_commands(words: KindWords) -> typer.Typer:
    """The `stats`, `leaderboard` and `history` commands of one kind."""
    kind, plural, metavar = words.kind, words.plural, f"{words.kind.upper()}_NAME"
    app = typer.Typer(
        help=f"{plural.capitalize()}: their statistics, leaderboards and history.",
        no_args_is_help=True,
    )

    @app.command(
        "stats",
        help=f"Show the statistics of one {kind}, or a table of every {kind}.\n\n"
        "Runs, success rate, cost (and how many runs have none), durations (mean, median, "
        "p95), tokens (input, output, cache write, cache read, total) and the top errors.\n\n"
        f"Example: claude-api {plural} stats {words.example} --since 2026-05-01 "
        "--tz Europe/Paris",
    )
    def stats(
        name: Annotated[
            str | None,
            typer.Argument(
                metavar=metavar,
                help=f"The {kind}; without one, every {kind}.",
                show_default=False,
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
        scope = usage_filter(project=project, since=since, until=until, tz=tz)
        usage.show_stats(kind, name, filter=scope, sort=sort, url=url, json_output=json_output)

    @app.command(
        "leaderboard",
        help=f"Show the top {plural} by usage, cost, success rate, duration or tokens.\n\n"
        "duration ranks by the average time, p50 and p95 by that percentile of the times: the "
        f"slowest first. Rates and times need a sample: {plural} run fewer than --min-runs "
        "times are left out. Ties are broken by name.\n\n"
        f"Example: claude-api {plural} leaderboard --by cost --limit 5 --since 2026-05-01",
    )
    def leaderboard(
        by: Annotated[
            MetricChoice, typer.Option("--by", help="What to rank by.")
        ] = MetricChoice.USAGE,
        limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many.")] = 10,
        min_invocations: Annotated[
            int | None,
            typer.Option(
                "--min-runs",
                "--min-invocations",
                min=0,
                help=f"Leave out {plural} run fewer times (default: "
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
        usage.show_leaderboard(
            kind,
            by=by,
            limit=limit,
            min_invocations=min_invocations,
            filter=usage_filter(project=project, since=since, until=until, tz=tz),
            url=url,
            json_output=json_output,
        )

    @app.command(
        "history",
        help=f"Show {words.article}'s invocations per day, week or month, with a sparkline of "
        "the trend.\n\nEmpty buckets included; by default the last 30 days, 12 weeks or 12 "
        f"months.\n\nExample: claude-api {plural} history {words.example} --period week "
        "--tz Europe/Paris",
    )
    def history(
        name: Annotated[
            str, typer.Argument(metavar=metavar, help=f"The {kind}.", show_default=False)
        ],
        period: PeriodOption = PeriodChoice.DAY,
        project: ProjectOption = None,
        since: SinceOption = None,
        until: UntilOption = None,
        tz: TzOption = "UTC",
        url: UrlOption = None,
        json_output: JsonOption = False,
    ) -> None:
        usage.show_history(
            kind,
            name,
            period=period,
            filter=usage_filter(project=project, since=since, until=until, tz=tz),
            url=url,
            json_output=json_output,
        )

    return app


agents_app = usage_commands(KindWords("agent", "agents", "an agent", "code-reviewer"))
skills_app = usage_commands(KindWords("skill", "skills", "a skill", "pdf"))
