"""`claude-api models` and `claude-api projects`: where the money goes, one row per model or
per project with a totals row."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from claude_api.client import output
from claude_api.client.api import open_api
from claude_api.client.options import (
    JsonOption,
    ProjectOption,
    SinceOption,
    TzOption,
    UntilOption,
    UrlOption,
    usage_filter,
)
from claude_api.client.output import Column
from claude_api.client.trends import KINDS, HistoryKind

KindOption = Annotated[HistoryKind, typer.Option("--kind", help="Agents, skills or both.")]
NONE_LABEL = "(none)"  # the row of invocations that name no model, or no project


def breakdown_columns(key: str, header: str) -> list[Column]:
    """The name, runs, success, cost and the tokens, as `analytics history` shows them."""
    return [
        Column(key, header, keep=True),
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


def models_list(
    kind: KindOption = HistoryKind.ALL,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show usage per model, most costly first, with a totals row.

    Runs, success rate, cost (- when unknown; Unpriced counts the runs it leaves out) and
    tokens (input, output, cache write, cache read, total) of each model; (none) holds the
    runs that name no model.

    Example: claude-api models --since 30d --project web
    """
    scope = usage_filter(project=project, since=since, until=until, tz=tz)
    with open_api(url) as api:
        found = api.run("Models", kind=KINDS[kind], filter=scope)["models"]
    _show(found, found["models"], "model", "Model", json_output=json_output)


def projects_list(
    kind: KindOption = HistoryKind.ALL,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show usage per project, most costly first, with a totals row.

    Runs, success rate, cost (- when unknown; Unpriced counts the runs it leaves out) and
    tokens of each project; (none) holds the runs outside any project. A key bound to a
    project sees that project only.

    Example: claude-api projects --since 2026-11-01 --until 2026-12-01
    """
    scope = usage_filter(since=since, until=until, tz=tz)
    with open_api(url) as api:
        found = api.run("Projects", kind=KINDS[kind], filter=scope)["projects"]
    _show(found, found["projects"], "projectId", "Project", json_output=json_output)


def _show(
    found: dict[str, Any], rows: list[dict[str, Any]], key: str, header: str, *, json_output: bool
) -> None:
    if json_output:
        output.print_json(found)
        return
    if not rows:
        output.info(f"no invocations in this range: no {header.lower()} to show")
        return
    named = [{**row, key: NONE_LABEL if row[key] is None else row[key]} for row in rows]
    totals = {**found["totals"], key: "Total"}
    output.print_table(
        named,
        output.priced_columns([*named, totals], breakdown_columns(key, header)),
        title=f"Usage per {header.lower()}, most costly first",
        footer=totals,
    )
