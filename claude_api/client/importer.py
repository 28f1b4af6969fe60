"""`claude-api import`: Claude Code transcripts on this machine into the usage tables."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from pathlib import Path

import typer

from claude_api.client import output
from claude_api.config import Settings
from claude_api.importer import ImportOptions, ImportSummary, import_transcripts
from claude_api.producers import open_producer

logger = logging.getLogger(__name__)

TRACKER_CLOSE_TIMEOUT = 120.0
LISTED_SKIPPED = 20  # skipped transcripts named in the table (--json names them all)


def transcripts_import(
    paths: list[Path] | None = typer.Argument(
        None,
        help="Transcript files or directories (default: $CLAUDE_CONFIG_DIR/projects, else "
        "~/.claude/projects and ~/.config/claude/projects).",
        show_default=False,
    ),
    idle_minutes: float = typer.Option(
        30.0,
        "--idle-minutes",
        min=0.0,
        help="A session whose newest transcript line is older than this (by the lines' own "
        "timestamps, not the files' times) is over: its main thread and open calls are "
        "finished. Younger sessions are recorded as running, with what they spent so far, "
        "until a later import or the SessionEnd hook.",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Processes that read sessions (default: one per core, up to 4, when there is "
        "more than 64 MB to read; else 1).",
        show_default=False,
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Import Claude Code session transcripts: each session a task, its main thread, subagents
    (Agent/Task calls) and skills (Skill calls and typed /skills) invocations with their own
    tokens and cost.

    Run it again at any time: it reads only what the transcripts gained since, and never
    records an invocation twice. A transcript that cannot be read, or whose session id cannot
    name a file, is skipped and named in the summary; every other session is imported. Exits 1
    when some events could not be stored or a session could not be imported.

    Example: claude-api import ~/.claude/projects --idle-minutes 10
    """
    missing = [str(path) for path in paths or [] if not path.exists()]
    if missing:
        output.error(f"no such file or directory: {', '.join(missing)}")
        raise typer.Exit(code=2)
    producer = open_producer(Settings())
    try:
        producer.deliver_spool()  # events spooled earlier go first
        summary = import_transcripts(
            paths or [],
            engine=producer.engine,
            tracker=producer.tracker,
            options=ImportOptions(idle=timedelta(minutes=idle_minutes), workers=workers),
            progress=partial(
                output.byte_progress,
                description="importing transcripts",
                enabled=output.interactive() and not json_output,
            ),
        )
    finally:
        if not producer.close(TRACKER_CLOSE_TIMEOUT):
            logger.error("gave up waiting for the events to be stored; some may be lost")
    if json_output:
        output.print_json(summary.to_dict())
    else:
        _print_summary(summary)
    if summary.events_not_stored:
        output.error(f"{summary.events_not_stored} events could not be stored; run it again")
    if summary.sessions_failed:
        output.error(
            f"{summary.sessions_failed} sessions could not be imported (named in the summary; "
            "the log says why)"
        )
    if not summary.ok:
        raise typer.Exit(code=1)


def _print_summary(summary: ImportSummary) -> None:
    rate = f" ({summary.bytes_read / 1e6 / summary.seconds:.0f} MB/s)" if summary.seconds else ""
    fields = [
        ("sessions", f"{summary.sessions:,} found, {summary.sessions_imported:,} imported"),
        ("", f"{summary.sessions_closed:,} over, {summary.sessions_live:,} still running"),
        ("files", f"{summary.files:,} found, {summary.files_read:,} read"),
        ("read", f"{summary.bytes_read / 1e6:,.1f} MB, {summary.lines_read:,} lines"),
        ("events", f"{summary.events:,}"),
        ("finished", f"{summary.agents:,} agent and {summary.skills:,} skill invocations"),
        ("time", f"{summary.seconds:.2f}s{rate}"),
    ]
    if summary.sessions_busy:
        fields.append(("busy", f"{summary.sessions_busy:,} sessions skipped (being imported)"))
    for reason, count in sorted(summary.skipped.items()):
        fields.append((f"skipped: {reason}", f"{count:,}"))
    skipped = sorted(summary.transcripts_skipped.items())
    if skipped:
        fields.append(("skipped transcripts", f"{len(skipped):,}"))
        fields.extend(("", f"{path}: {reason}") for path, reason in skipped[:LISTED_SKIPPED])
        if len(skipped) > LISTED_SKIPPED:
            fields.append(("", f"and {len(skipped) - LISTED_SKIPPED:,} more (--json names all)"))
    output.print_fields(fields, title="transcript import")
