"""`claude-api analytics purge`: delete raw invocations, and rollups, past their retention, on
the local database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import Engine

from claude_api.client import output
from claude_api.client.output import Column
from claude_api.config import Settings, invalid_settings, setting_variable

PURGE_COLUMNS = [
    Column("rows", "Rows"),
    Column("before", "Before (UTC)", no_wrap=True),
    Column("count", "Count", output.count, numeric=True),
]


def analytics_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            min=0,
            metavar="DAYS",
            help="Keep this many days of raw invocations, 0 for all (default: "
            "CLAUDE_API_RETENTION_DAYS, 90).",
            show_default=False,
        ),
    ] = None,
    rollup_retention_days: Annotated[
        int | None,
        typer.Option(
            "--rollup-retention-days",
            min=0,
            metavar="DAYS",
            help="Keep this many days of rollups, 0 for all (default: "
            "CLAUDE_API_ROLLUP_RETENTION_DAYS, 0).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete the invocations older than the retention, in batches, on the local database.

    Reports, history and leaderboards over purged days still answer from the rollups.

    Rollups are kept unless a rollup retention is set. The server purges daily by itself.

    Example: claude-api analytics purge --dry-run --retention-days 30
    """
    from sqlalchemy.exc import SQLAlchemyError

    from claude_api.models.retention import purge

    overrides = {"retention_days": retention_days, "rollup_retention_days": rollup_retention_days}
    try:
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as error:
        message = invalid_settings(error)
        for name, value in overrides.items():
            if value is not None:  # name the option that was given, not the variable it beat
                message = message.replace(setting_variable(name), f"--{name.replace('_', '-')}")
        output.error(message)
        raise typer.Exit(1) from None
    shown = output.interactive() and not dry_run
    with (
        _engine(settings) as engine,
        output.progress(None, description="purging", enabled=shown) as advance,
    ):
        try:
            result = purge(
                engine,
                raw_retention_days=settings.retention_days,
                rollup_retention_days=settings.rollup_retention_days,
                dry_run=dry_run,
                progress=advance,
                wait=True,  # after a purge another process (a server) is running, if any
            )
        except SQLAlchemyError as error:
            output.error(f"the purge failed ({_first_line(error)}); what was deleted stays deleted")
            raise typer.Exit(1) from None
    rows = [
        {"rows": "agent invocations", "before": result.raw_before, "count": result.agent_rows},
        {"rows": "skill invocations", "before": result.raw_before, "count": result.skill_rows},
        {"rows": "rollup rows", "before": result.rollups_before, "count": result.rollup_rows},
    ]
    if json_output:
        output.print_json(
            {
                "dry_run": result.dry_run,
                "raw_before": _iso(result.raw_before),
                "rollups_before": _iso(result.rollups_before),
                "agent_rows": result.agent_rows,
                "skill_rows": result.skill_rows,
                "rollup_rows": result.rollup_rows,
            }
        )
        return
    for row in rows:
        row["before"] = _iso(row["before"]) or "kept"
    title = "Would be purged (dry run)" if dry_run else "Purged"
    output.print_table(rows, PURGE_COLUMNS, title=title)


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    """The local database, migrated first; exits 1 if it cannot be opened."""
    from sqlalchemy.engine import make_url

    from claude_api.models.db import make_engine, upgrade

    engine = None
    try:
        engine = make_engine(settings.database_url)
        upgrade(engine)
    except Exception as error:
        if engine is not None:
            engine.dispose()
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        output.error(
            f"cannot open the database {where} ({_first_line(error)}); "
            "check CLAUDE_API_DATABASE_URL"
        )
        raise typer.Exit(1) from None
    try:
        yield engine
    finally:
        engine.dispose()


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
