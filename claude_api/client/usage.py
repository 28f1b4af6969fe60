"""What `agents` and `skills` commands show, for either kind: statistics, leaderboards and
histories, each from one canned GraphQL operation, as a table or as JSON.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from claude_api.client import output
from claude_api.client.api import open_api
from claude_api.client.options import MetricChoice, PeriodChoice, enum_name
from claude_api.client.output import Column
from claude_api.client.transport import FILL_HINT

LIST_PAGE_SIZE = 200

STATS_COLUMNS = [
    Column("name", "Name"),
    Column("invocations", "Runs", output.count, numeric=True, total=True),
    Column("successRate", "Success", output.percent, numeric=True),
    Column("totalCostUsd", "Cost", output.money, numeric=True, total=True),
    output.UNPRICED_COLUMN,
    Column("avgDurationSeconds", "Avg time", output.duration, numeric=True),
    Column("p95DurationSeconds", "p95 time", output.duration, numeric=True),
]
# Tokens as ccusage shows them: input, output, cache write, cache read and their total.
TOKEN_COLUMNS = [
    Column("name", "Name"),
    Column("inputTokens", "Input", output.tokens, numeric=True, total=True),
    Column("outputTokens", "Output", output.tokens, numeric=True, total=True),
    Column("cacheCreationTokens", "Cache write", output.tokens, numeric=True, total=True),
    Column("cacheReadTokens", "Cache read", output.tokens, numeric=True, total=True),
    # The total goes last when the terminal is narrow.
    Column("totalTokens", "Total", output.tokens, numeric=True, total=True, priority=0),
]
ERROR_COLUMNS = [
    Column("count", "Failures", output.count, numeric=True),
    Column("errorMessage", "Error"),
]
METRIC_FORMATS = {
    MetricChoice.USAGE: (output.count, "Runs"),
    MetricChoice.COST: (output.money, "Cost"),
    MetricChoice.SUCCESS_RATE: (output.percent, "Success"),
    MetricChoice.DURATION: (output.duration, "Avg time"),
    MetricChoice.P50: (output.duration, "p50 time"),
    MetricChoice.P95: (output.duration, "p95 time"),
    MetricChoice.TOKENS: (output.tokens, "Tokens"),
}
# A rate or a time from a handful of runs says little: these boards leave out names run fewer
# times unless --min-runs says otherwise.
RATED_MIN_RUNS = 5
RATED_METRICS = {
    MetricChoice.SUCCESS_RATE,
    MetricChoice.DURATION,
    MetricChoice.P50,
    MetricChoice.P95,
}


class SortChoice(StrEnum):
    NAME = "name"
    RUNS = "runs"
    SUCCESS = "success"
    FAILED = "failed"
    COST = "cost"
    AVG_COST = "avg-cost"
    AVG_TIME = "avg-time"
    P50 = "p50"
    P95 = "p95"
    P99 = "p99"
    TOKENS = "tokens"
    INPUT = "input"
    OUTPUT = "output"
    CACHE_WRITE = "cache-write"
    CACHE_READ = "cache-read"
    LAST_SEEN = "last-seen"


# The field of the API's answer each --sort choice orders by.
SORT_FIELDS = {
    SortChoice.NAME: "name",
    SortChoice.RUNS: "invocations",
    SortChoice.SUCCESS: "successRate",
    SortChoice.FAILED: "failed",
    SortChoice.COST: "totalCostUsd",
    SortChoice.AVG_COST: "avgCostUsd",
    SortChoice.AVG_TIME: "avgDurationSeconds",
    SortChoice.P50: "p50DurationSeconds",
    SortChoice.P95: "p95DurationSeconds",
    SortChoice.P99: "p99DurationSeconds",
    SortChoice.TOKENS: "totalTokens",
    SortChoice.INPUT: "inputTokens",
    SortChoice.OUTPUT: "outputTokens",
    SortChoice.CACHE_WRITE: "cacheCreationTokens",
    SortChoice.CACHE_READ: "cacheReadTokens",
    SortChoice.LAST_SEEN: "lastSeenAt",
}
SortOption = Annotated[
    SortChoice | None,
    typer.Option(
        "--sort",
        help="Order the table by this column: the name A to Z, any other highest first "
        "(unknown values last). Default: by name.",
        show_default=False,
    ),
]
BUCKET_LABELS = {PeriodChoice.DAY: "Day", PeriodChoice.WEEK: "Week of", PeriodChoice.MONTH: "Month"}


def show_stats(
    kind: str,
    name: str | None,
    *,
    filter: dict[str, Any],
    url: str | None,
    json_output: bool,
    sort: SortChoice | None = None,
) -> None:
    """Statistics of the `kind` named `name`, or of every one of that kind (in `sort` order)."""
    title = kind.capitalize()
    if name is not None:
        with open_api(url, kind=kind, name=name) as api:
            stats = api.run("Stats", name=name, isAgent=kind == "agent", filter=filter)[kind]
        if json_output:
            output.print_json(stats)
        else:
            _print_one(kind, stats, filter["tz"])
        return
    items: list[dict[str, Any]] = []
    with open_api(url) as api:
        after = None
        while True:
            page = api.run(
                "StatsList",
                filter=filter,
                first=LIST_PAGE_SIZE,
                after=after,
                isAgent=kind == "agent",
            )
            listing = page[f"{kind}s"]
            items.extend(listing["items"])
            if not listing["hasNext"]:
                break
            after = listing["nextCursor"]
    if sort is not None:
        items = sorted_by(items, sort)
    if json_output:
        output.print_json(items)
    elif not items:
        output.info(_nothing(kind, filter))
    else:
        columns = output.priced_columns(items, STATS_COLUMNS)
        output.print_table(items, columns, title=f"{title}s", totals=True)
        output.print_table(items, TOKEN_COLUMNS, title="Tokens", totals=True)


def _nothing(kind: str, filter: dict[str, Any]) -> str:
    """Why a listing is empty: the options left everything out, or nothing is recorded yet."""
    if set(filter) - {"tz"}:
        return f"no {kind} invocation matches these options"
    return f"no {kind} has been recorded yet: {FILL_HINT}"


def sorted_by(items: list[dict[str, Any]], sort: SortChoice) -> list[dict[str, Any]]:
    """`items` by the field of `sort`: names A to Z, other values highest first, unknown ones
    last; ties keep the API's order (by name)."""
    field = SORT_FIELDS[sort]
    if sort is SortChoice.NAME:
        return sorted(items, key=lambda item: item[field])
    known = [item for item in items if item[field] is not None]
    unknown = [item for item in items if item[field] is None]
    return sorted(known, key=lambda item: item[field], reverse=True) + unknown


def _print_one(kind: str, stats: dict[str, Any], tz: str) -> None:
    runs = stats["invocations"]
    output.print_fields(
        [
            (
                "invocations",
                f"{output.count(runs)} ({output.count(stats['completed'])} completed, "
                f"{output.count(stats['failed'])} failed, "
                f"{output.count(stats['running'])} running)",
            ),
            ("success rate", output.percent(stats["successRate"])),
            ("total cost", output.money(stats["totalCostUsd"])),
            *output.unpriced_field(stats),
            ("average cost", output.money(stats["avgCostUsd"])),
            ("average duration", output.duration(stats["avgDurationSeconds"])),
            ("median duration", output.duration(stats["p50DurationSeconds"])),
            ("p95 duration", output.duration(stats["p95DurationSeconds"])),
            ("p99 duration", output.duration(stats["p99DurationSeconds"])),
            ("input tokens", output.count(stats["inputTokens"])),
            ("output tokens", output.count(stats["outputTokens"])),
            ("cache write tokens", output.count(stats["cacheCreationTokens"])),
            ("cache read tokens", output.count(stats["cacheReadTokens"])),
            ("total tokens", output.count(stats["totalTokens"])),
            ("first seen", output.moment(stats["firstSeenAt"], tz)),
            ("last seen", output.moment(stats["lastSeenAt"], tz)),
        ],
        title=f"{stats['name']} ({kind})",
    )
    if stats["topErrors"]:
        output.print_line()
        output.print_table(stats["topErrors"], ERROR_COLUMNS, title="Most frequent errors")


def show_leaderboard(
    kind: str,
    *,
    by: MetricChoice,
    limit: int,
    min_invocations: int | None,
    filter: dict[str, Any],
    url: str | None,
    json_output: bool,
) -> None:
    """The top `limit` of `kind` by a metric, among those run at least `min_invocations`
    times (default: RATED_MIN_RUNS for rates and times, else 1)."""
    if min_invocations is None:
        min_invocations = RATED_MIN_RUNS if by in RATED_METRICS else 1
    with open_api(url) as api:
        entries = api.run(
            "Leaderboard",
            kind=kind.upper(),
            by=enum_name(by),
            limit=limit,
            minInvocations=min_invocations,
            filter=filter,
        )["leaderboard"]
    if json_output:
        output.print_json(entries)
        return
    if not entries:
        output.info(_nothing(kind, filter))
        return
    unit, header = METRIC_FORMATS[by]
    columns = [
        Column("rank", "#", output.count, numeric=True),
        Column("name", "Name"),
        Column("value", header, unit, numeric=True),
    ]
    if by is not MetricChoice.USAGE:
        columns.append(Column("invocations", "Runs", output.count, numeric=True))
    if by is MetricChoice.COST:
        columns = output.priced_columns(entries, [*columns, output.UNPRICED_COLUMN])
    sample = f"{kind}s run at least {min_invocations:,} times" if min_invocations > 1 else None
    output.print_table(
        entries, columns, title=f"Top {kind}s by {by.value.replace('-', ' ')}", caption=sample
    )


def show_history(
    kind: str,
    name: str,
    *,
    period: PeriodChoice,
    filter: dict[str, Any],
    url: str | None,
    json_output: bool,
) -> None:
    """Invocations of one `kind` per bucket of `period`, with a sparkline of the trend."""
    with open_api(url, kind=kind, name=name) as api:
        history = api.run(
            "History", kind=kind.upper(), name=name, period=enum_name(period), filter=filter
        )["history"]
    if json_output:
        output.print_json(history)
        return
    buckets = history["buckets"]
    runs = [bucket["invocations"] for bucket in buckets]
    first, last = buckets[0]["periodStart"], buckets[-1]["periodStart"]
    output.print_line(f"{name} ({kind}): invocations per {period.value}, {first} to {last}")
    peak, total = output.count(max(runs)), output.count(sum(runs))
    output.print_line(f"{output.sparkline(runs)}  peak {peak}, total {total}")
    columns = [
        Column("periodStart", BUCKET_LABELS[period], _bucket_label(period)),
        Column("invocations", "Runs", output.count, numeric=True),
        Column("successRate", "Success", output.percent, numeric=True),
        Column("failed", "Failed", output.count, numeric=True),
        Column("totalCostUsd", "Cost", output.money, numeric=True),
        output.UNPRICED_COLUMN,
        Column("avgDurationSeconds", "Avg time", output.duration, numeric=True),
        Column("totalTokens", "Tokens", output.tokens, numeric=True),
    ]
    columns = output.priced_columns(buckets, columns)
    output.print_table(buckets, columns, caption=f"time zone {history['tz']}")


def _bucket_label(period: PeriodChoice) -> Any:
    if period is PeriodChoice.MONTH:
        return lambda start: start[:7]
    return output.plain
