"""`claude-api db`: the database's schema version and migrations."""

from __future__ import annotations

import typer

from claude_api.client import output
from claude_api.config import Settings
from claude_api.models.db import current_revision, head_revision, make_engine, upgrade
from claude_api.models.local_days import keep_local_days

db_app = typer.Typer(help="Manage the analytics database.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the database (CLAUDE_API_DATABASE_URL), and keep the days of
    CLAUDE_API_TIME_ZONES (default: this machine's) as daily rollups, as the server does when
    it starts.

    Example: claude-api db upgrade
    """
    settings = Settings()
    engine = make_engine(settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
        added = keep_local_days(engine, settings.time_zones)
    finally:
        engine.dispose()
    if before == after:
        output.info(f"database is up to date (schema {after})")
    else:
        output.info(f"database upgraded from schema {before or 'none'} to {after}")
    if added:
        output.info(f"now keeping local days as daily rollups: {', '.join(added)}")


@db_app.command("status")
def db_status() -> None:
    """Show the schema version of the database and the one this version expects."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    output.print_json({"current": current, "head": head_revision()})
