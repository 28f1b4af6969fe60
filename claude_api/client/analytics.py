"""`claude-api analytics`: period reports, exports of every invocation to CSV or JSON Lines, and
the purge of invocations past their retention."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from claude_api.client import output
from claude_api.client.api import open_api
from claude_api.client.export import (
    ExportFormat,
    RowCounter,
    atomic_file,
    write_rows,
)
from claude_api.client.options import (
    DateOption,
    JsonOption,
    PeriodChoice,
    PeriodOption,
    ProjectOption,
    SinceOption,
    TzOption,
    UntilOption,
    UrlOption,
    enum_name,
    report_day,
    usage_filter,
)
from claude_api.client.output import Column
from claude_api.client.purge import analytics_purge
from claude_api.client.report_guardrails import print_guardrails
from claude_api.client.report_window import fallback_note, report_title
from claude_api.client.transport import Api, ApiError
from claude_api.client.trends import analytics_history

EXPORT_PAGE_SIZE = 1000  # rows per step of the progress bar
EXPORT_PATH = "/v1/invocations/export"

analytics_app = typer.Typer(
    help="Reports over a day, week or month, exports of every invocation, and purges of old ones.",
    no_args_is_help=True,
)


class KindChoice(StrEnum):
    AGENT = "agent"
    SKILL = "skill"
    ALL = "all"

    def variable(self) -> str | None:
        """The GraphQL `Kind`, None for both."""
        return None if self is KindChoice.ALL else self.value.upper()


KindOption = Annotated[KindChoice, typer.Option("--kind", help="Agents, skills or both.")]

ROW_COLUMNS = [
    Column("name", "Name"),
    Column("invocations", "Runs", output.count, numeric=True),
    Column("successRate", "Success", output.percent, numeric=True),
    Column("failed", "Failed", output.count, numeric=True),
    Column("totalCostUsd", "Cost", output.money, numeric=True),
    output.UNPRICED_COLUMN,
    Column("avgDurationSeconds", "Avg time", output.duration, numeric=True),
    Column("totalTokens", "Tokens", output.tokens, numeric=True),
]
FAILURE_COLUMNS = [
    Column("name", "Name"),
    Column("count", "Failures", output.count, numeric=True),
    Column("errorMessage", "Error"),
]


@analytics_app.command("report")
def analytics_report(
    period: PeriodOption = PeriodChoice.DAY,
    on: DateOption = None,
    kind: KindOption = KindChoice.ALL,
    project: ProjectOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a day, week or month against the same stretch of the one before it.

    Totals and their change, every agent and skill, and the most frequent failures. Without
    --date: the current period so far (today so far, the week or month to now), compared
    with the period before up to the same day and time ("1-7 Nov, to 10:00"); when the
    current period has nothing yet, the latest period that has invocations, said so. A past
    period is compared with the whole period before.

    Then the budgets that cover its agents, skills and project, in their current period
    (spent ones first, with what they stop), and the alerts firing on them: their rule, its
    measure now and since when. --json holds them as `budgets` and `openAlerts`.

    Example: claude-api analytics report --period week --date 2026-05-04 --tz Europe/Paris
    """
    with open_api(url) as api:
        answer = api.run(
            "Report",
            period=enum_name(period),
            date=report_day(on, tz),
            kind=kind.variable(),
            filter=usage_filter(project=project, tz=tz),
            projectId=project,
        )
    report = answer["report"]
    if json_output:
        output.print_json(
            {**report, "budgets": answer["budgets"], "openAlerts": answer["openAlerts"]}
        )
        return
    note = fallback_note(report, period.value)
    if note:
        output.info(note)
    output.print_table(
        _totals_rows(report),
        [
            Column("label", ""),
            Column("current", "Current", numeric=True),
            Column("previous", "Previous", numeric=True),
            Column("change", "Change", numeric=True),
        ],
        title=report_title(report, period.value),
    )
    for rows, title in ((report["agents"], "Agents"), (report["skills"], "Skills")):
        if rows:
            output.print_table(rows, output.priced_columns(rows, ROW_COLUMNS), title=title)
    if report["topFailures"]:
        output.print_table(report["topFailures"], FAILURE_COLUMNS, title="Most frequent failures")
    print_guardrails(answer["budgets"], answer["openAlerts"], report["tz"])


def _totals_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    now, before, change = report["totals"], report["previousTotals"], report["change"]

    def relative(ratio: float | None) -> str:
        return "" if ratio is None else f" ({output.signed(ratio, output.percent)})"

    def row(label: str, key: str, unit: Any, change: str = "") -> dict[str, str]:
        current, previous = unit(now[key]), unit(before[key])
        return {"label": label, "current": current, "previous": previous, "change": change}

    # How many invocations each total cost leaves out, when either period has some.
    partial = now["unpricedInvocations"] or before["unpricedInvocations"]
    unpriced = [row("Unpriced", "unpricedInvocations", output.count)] if partial else []
    return [
        row(
            "Invocations",
            "invocations",
            output.count,
            output.signed(change["invocationsDelta"]) + relative(change["invocationsRelative"]),
        ),
        row(
            "Success rate", "successRate", output.percent, output.points(change["successRateDelta"])
        ),
        row("Failed", "failed", output.count, output.signed(now["failed"] - before["failed"])),
        row(
            "Total cost",
            "totalCostUsd",
            output.money,
            output.signed(change["totalCostUsdDelta"], output.money)
            + relative(change["totalCostUsdRelative"]),
        ),
        *unpriced,
        row("Avg duration", "avgDurationSeconds", output.duration),
        row("Input tokens", "inputTokens", output.tokens),
        row("Output tokens", "outputTokens", output.tokens),
        row("Cache write tokens", "cacheCreationTokens", output.tokens),
        row("Cache read tokens", "cacheReadTokens", output.tokens),
        row("Total tokens", "totalTokens", output.tokens),
    ]


@analytics_app.command("export")
def analytics_export(
    target: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="The file to write (.csv, .jsonl or .ndjson), replaced only once complete; "
            "- for standard output.",
        ),
    ],
    kind: KindOption = KindChoice.ALL,
    name: Annotated[
        str | None, typer.Option("--name", help="Only this agent's or skill's invocations.")
    ] = None,
    export_format: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            help="csv or jsonl (default: from the file name; csv on standard output).",
            show_default=False,
        ),
    ] = None,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
) -> None:
    """Export every invocation, one row each, to a CSV or JSON Lines file.

    Start order; each row has its task, status, duration, cost and where it came from, tokens
    (cache read and cache write included), model, error and who recorded it.

    Memory stays flat however many rows; the file appears only once complete.

    CSV cells that a spreadsheet would run as formulas are escaped with a leading quote.

    Example: claude-api analytics export --output stats.csv --kind agent --since 7d
    """
    path = None if target == "-" else Path(target)
    chosen = _export_format(path, export_format)
    scope = usage_filter(project=project, since=since, until=until, tz=tz)
    with open_api(url) as api:
        if path is None:
            written = _export(
                api, sys.stdout, chosen, kind=kind.variable(), name=name, filter=scope
            )
        else:
            with atomic_file(path) as file:
                written = _export(api, file, chosen, kind=kind.variable(), name=name, filter=scope)
        purged = _purged(api, kind=kind.variable(), name=name, filter=scope)
    output.info(f"exported {written:,} invocations to {target if path else 'standard output'}")
    _purge_note(purged, written)


def _export_format(path: Path | None, chosen: ExportFormat | None) -> ExportFormat:
    """The format to write: --format, else the file name's; a path nothing can be written to,
    or a name without a known extension, is a usage error."""
    if path is not None and (path.is_dir() or not path.parent.is_dir()):
        where = path if path.is_dir() else path.parent
        raise typer.BadParameter(
            f"{'is a directory' if path.is_dir() else 'no directory'}: {str(where)!r}",
            param_hint="'--output'",
        )
    if chosen is not None:
        return chosen
    if path is None:
        return ExportFormat.CSV
    found = ExportFormat.for_path(path)
    if found is None:
        raise typer.BadParameter(
            f"{path.name!r} has no known extension: use .csv, .jsonl or .ndjson, or --format",
            param_hint="'--output'",
        )
    return found


analytics_app.command("purge")(analytics_purge)
analytics_app.command("history")(analytics_history)


def _purge_note(purged: dict[str, Any] | None, written: int) -> None:
    """Say how many invocations of the range the export lacks because they were purged."""
    if purged and purged["invocations"]:
        before = datetime.fromisoformat(purged["before"]).strftime("%Y-%m-%d")
        output.info(
            f"note: {purged['invocations']:,} invocations before {before} UTC were purged from "
            f"the raw rows (the rollups still count them); the export holds the {written:,} "
            "that remain"
        )


def _export(
    api: Api,
    file: TextIO,
    export_format: ExportFormat,
    *,
    kind: str | None,
    name: str | None,
    filter: dict[str, Any],
) -> int:
    shown = output.interactive()
    total = None
    if shown:  # the total only feeds the progress bar: no count query when nobody watches
        total = api.run("InvocationCount", kind=kind, name=name, filter=filter)["invocationCount"]
    with output.progress(total, description="exporting", enabled=shown) as advance:
        engine = api.local_engine()
        if engine is not None:
            return _export_local(engine, file, export_format, advance, kind, name, filter)
        return _export_stream(api, file, export_format, advance, kind, name, filter)


def _export_local(
    engine: Any,
    file: TextIO,
    export_format: ExportFormat,
    advance: Any,
    kind: str | None,
    name: str | None,
    filter: dict[str, Any],
) -> int:
    """The rows straight from the query layer: GraphQL would cost more than writing them."""
    from sqlmodel import Session

    from claude_api.models.queries import iter_invocation_rows

    scope = _local_filter(kind, name, filter)
    with Session(engine) as session:
        escape = export_format is ExportFormat.CSV
        rows = iter_invocation_rows(session, filter=scope, escape_formulas=escape)
        return write_rows(rows, file, export_format, progress=advance, every=EXPORT_PAGE_SIZE)


def _local_filter(kind: str | None, name: str | None, filter: dict[str, Any]) -> Any:
    """The query layer's filter for an export's GraphQL variables."""
    from claude_api.errors import InvalidFilter
    from claude_api.models.filters import UsageFilter

    def instant(key: str) -> datetime | None:
        return datetime.fromisoformat(filter[key]) if key in filter else None

    try:
        return UsageFilter(
            kind=kind.lower() if kind else None,
            name=name,
            project_id=filter.get("projectId"),
            since=instant("since"),
            until=instant("until"),
        )
    except InvalidFilter as error:
        raise ApiError(error.message, code="BAD_USER_INPUT", field=error.field) from None


def _purged(
    api: Api, *, kind: str | None, name: str | None, filter: dict[str, Any]
) -> dict[str, Any] | None:
    """PurgedInvocations' answer; in-process straight from the query layer, as the export's
    rows, so that an export loads no GraphQL schema."""
    engine = api.local_engine()
    if engine is None:
        answer = api.run("PurgedInvocations", kind=kind, name=name, filter=filter)
        return answer["purgedInvocations"]
    from sqlmodel import Session

    from claude_api.models.queries.purged import count_purged_invocations

    with Session(engine) as session:
        purged = count_purged_invocations(session, filter=_local_filter(kind, name, filter))
    if purged is None:
        return None
    return {"before": purged.before.isoformat(), "invocations": purged.invocations}


def _export_stream(
    api: Api,
    file: TextIO,
    export_format: ExportFormat,
    advance: Any,
    kind: str | None,
    name: str | None,
    filter: dict[str, Any],
) -> int:
    """The server's export stream, written as it arrives; how many rows it held."""
    params = {
        "format": export_format.value,
        "kind": kind.lower() if kind else None,
        "name": name,
        "project": filter.get("projectId"),
        "since": filter.get("since"),
        "until": filter.get("until"),
    }
    counter = RowCounter(export_format)
    with api.stream(EXPORT_PATH, {k: v for k, v in params.items() if v is not None}) as chunks:
        for chunk in chunks:
            file.write(chunk)
            advance(counter.add(chunk))
    return counter.rows
