"""`claude-api demo`: fill the database with realistic synthetic usage, to try the service."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import typer

from claude_api.client import output
from claude_api.config import Settings
from claude_api.demo import (
    DEFAULT_DAYS,
    RETENTION_MARGIN_DAYS,
    batches_ahead,
    days_within,
    generate_events,
    kept_until,
    longest_within,
)
from claude_api.models.db import make_engine, upgrade
from claude_api.plugins.recorder import Recorder

BATCH = 10_000
# Enough for every page and command to show something: a few seconds to make.
DEFAULT_EVENTS = 20_000


def demo(
    events: int = typer.Option(
        DEFAULT_EVENTS, "--events", min=1, help="How many invocations to make."
    ),
    seed: int = typer.Option(0, "--seed", help="The same seed makes the same data."),
    days: int | None = typer.Option(
        None,
        "--days",
        min=1,
        max=3650,
        help=f"Spread over this many days (default: {DEFAULT_DAYS}, or the raw-row retention "
        f"CLAUDE_API_RETENTION_DAYS less {RETENTION_MARGIN_DAYS} days); at most the retention "
        "less one day.",
        show_default=False,
    ),
) -> None:
    """Fill the database (CLAUDE_API_DATABASE_URL) with synthetic Claude Code tasks: a main
    thread, subagents (Explore, Plan, general-purpose, custom ones) and skills with skewed
    popularity, linked to their tasks; failures with real-looking errors; cache-heavy tokens on
    Claude models priced by the pricing tables, some on unpriced models, and inline skills
    without tokens or cost; over the --days days before today.

    The events stay within the raw-row retention the server purges with
    (CLAUDE_API_RETENTION_DAYS), so its purges keep them; a --days reaching past it is refused.

    Events go through the recorder's bulk path; running it twice with the same seed on the
    same day adds nothing (the event ids repeat).

    Example: claude-api demo --events 100000 --seed 7
    """
    settings = Settings()
    retention = settings.retention_days
    longest = longest_within(retention)
    if days is None:
        days = days_within(retention)
    elif longest is not None and days > longest:
        raise typer.BadParameter(
            f"{days} days reach past the raw-row retention: CLAUDE_API_RETENTION_DAYS="
            f"{retention} keeps {retention} days, so the next purges would delete the oldest "
            f"events; use --days {longest} or fewer, or set CLAUDE_API_RETENTION_DAYS=0 to keep "
            "raw rows for good",
            param_hint="'--days'",
        )
    now = datetime.now(UTC)
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        recorder = Recorder(engine)
        generated = generate_events(events, seed=seed, end=now, days=days)
        started = time.perf_counter()
        with output.progress(
            events, description="demo events", enabled=sys.stderr.isatty()
        ) as advance:
            for batch in batches_ahead(generated, BATCH):
                recorder.usage_batch(batch)
                advance(len(batch))
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    output.info(f"recorded {events:,} demo events in {elapsed:.1f}s ({events / elapsed:,.0f}/s)")
    until = kept_until(days, retention, now.date())
    kept = "for good" if until is None else f"in full until {until.isoformat()}"
    output.info(
        f"they span the {days} days before today (UTC); the raw-row retention "
        f"(CLAUDE_API_RETENTION_DAYS={retention}) keeps them {kept}"
    )
