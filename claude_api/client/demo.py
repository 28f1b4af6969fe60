"""`claude-api demo`: fill the database with realistic synthetic usage, to try the service."""

from __future__ import annotations

import sys
import time

import typer

from claude_api.client import output
from claude_api.config import Settings
from claude_api.demo import batches_ahead, generate_events
from claude_api.models.db import make_engine, upgrade
from claude_api.plugins.recorder import Recorder

BATCH = 10_000


def demo(
    events: int = typer.Option(..., "--events", min=1, help="How many invocations to make."),
    seed: int = typer.Option(0, "--seed", help="The same seed makes the same data."),
    days: int = typer.Option(120, "--days", min=1, max=3650, help="Spread over this many days."),
) -> None:
    """Fill the database (CLAUDE_API_DATABASE_URL) with synthetic tasks: agents and skills with
    skewed popularity, subagents and skills linked to their tasks, failures with real-looking
    errors, tokens and costs per model, over the last --days days.

    Events go through the recorder's bulk path; running it twice with the same seed adds
    nothing (the event ids repeat).

    Example: claude-api demo --events 100000 --seed 7
    """
    engine = make_engine(Settings().database_url)
    try:
        upgrade(engine)
        recorder = Recorder(engine)
        generated = generate_events(events, seed=seed, days=days)
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
