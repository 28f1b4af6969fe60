"""`claude-api analytics history`: every agent and skill per day, week or month, with totals,
as ccusage's daily and monthly reports show them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from claude_api.client import output
from claude_api.client.api import open_api
from claude_api.client.options import (
    JsonOption,
    PeriodChoice,
    PeriodOption,
    ProjectOption,
    SinceOption,
    TzOption,
    UntilOption,
    UrlOption,
    enum_name,
    usage_filter,
)
from claude_api.client.output import Column

PERIOD_HEADERS = {
    PeriodChoice.DAY: "Day",
    PeriodChoice.WEEK: "Week of",
    PeriodChoice.MONTH: "Month",
}


class HistoryKind(StrEnum):
    AGENT = "agent"
    SKILL = "skill"
    ALL = "all"


KINDS = {HistoryKind.AGENT: "AGENT", HistoryKind.SKILL: "SKILL", HistoryKind.ALL: None}


def history_columns(period: PeriodChoice) -> list[Column]:
    """Period, runs, success, cost and the tokens, as ccusage's daily and monthly tables."""
    label = (lambda start: start[:7]) if period is PeriodChoice.MONTH else output.plain
    return [
        Column("periodStart", PERIOD_HEADERS[period], label, keep=True),
        Column("invocations", "Runs", output.count, numeric=True),
        Column("successRate", "Success", output.percent, numeric=True),
        Column("totalCostUsd", "Cost", output.money, numeric=True, priority=0),
        output.UNPRICED_COLUMN,
        Column("inputTokens", "Input", output.tokens, numeric=True),
        Column("outputTokens", "Output", output.tokens, numeric=True),
        Column("cacheCreationTokens", "Cache write", output.tokens, numeric=True),
        Column("cacheReadTokens", "Cache read", output.tokens, numeric=True),
        Column("totalTokens", "Total tokens", output.tokens, numeric=True, priority=1),
    ]


def analytics_history(
    period: PeriodOption = PeriodChoice.DAY,
    kind: Annotated[HistoryKind, typer.Option("--kind", help="Agents, skills or both.")] = (
        HistoryKind.ALL
    ),
    project: ProjectOption = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Only invocations of this model.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show every agent and skill per day, week or month, with a totals row.

    Runs, success rate, cost and tokens (input, output, cache write, cache read, total) per
    period, empty periods included; by default the last 30 days, 12 weeks or 12 months.

    Example: claude-api analytics history --period month --project web
    """
    scope = usage_filter(project=project, since=since, until=until, tz=tz)
    if model is not None:
        scope["model"] = model
    with open_api(url) as api:
        history = api.run("UsageHistory", kind=KINDS[kind], period=enum_name(period), filter=scope)[
            "history"
        ]
    if json_output:
        output.print_json(history)
        return
    buckets = history["buckets"]
    totals = {**history["totals"], "periodStart": "Total"}
    columns = output.priced_columns([*buckets, totals], history_columns(period))
    first, last = buckets[0]["periodStart"], buckets[-1]["periodStart"]
    what = "agent and skill" if kind is HistoryKind.ALL else kind.value
    output.print_table(
        buckets,
        columns,
        title=f"Every {what} per {period.value}, {first} to {last}",
        caption=f"time zone {history['tz']}",
        footer=totals,
    )
