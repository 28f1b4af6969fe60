"""Recording through the hook path and bulk ingest through the recorder, against a raw
`executemany`, and how long `emit` holds the caller's thread.

    python -m bench.bench_tracking [--events 100000] [--database-url URL] [--time-zones ZONES]

Each run measures the baseline and both recording paths on the same machine, in fresh copies of
the same migrated tables, and prints the ratios. The baseline writes the table alone, so the
ratios show the whole cost of recording, rollup maintenance included. PostgreSQL: pass a URL
of an empty database; the benchmark creates and drops its own schema there. The events start
at the beginning of the current UTC month (on PostgreSQL, in that month's partition).
With `--time-zones`, each database keeps the days of those zones as daily rollups before the
events are written, as a server started with `CLAUDE_API_TIME_ZONES` does: every write then
adds to those days too.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.db import make_engine, upgrade
from claude_api.models.local_days import keep_days, start_hours
from claude_api.models.write import event_row
from claude_api.plugins.recorder import Recorder
from claude_api.tracking import build_tracker

BATCH = 10_000

AGENTS = [f"agent-{i}" for i in range(40)]
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]


def make_finished_events(count: int) -> list[UsageEvent]:
    # From the start of the current UTC month: on PostgreSQL the rows land in that month's
    # partition, as a server's rows do, not in the DEFAULT partition of months without one.
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return [
        UsageEvent(
            event_id=uuid.uuid4(),
            kind=Kind.AGENT,
            name=AGENTS[(i * 7919) % len(AGENTS)],
            task_id=f"task-{i // 5}",
            project_id=f"project-{i % 3}",
            timestamp=start + timedelta(seconds=i),
            status=Status.FAILED if i % 17 == 0 else Status.COMPLETED,
            duration_seconds=1 + (i % 300) / 10,
            cost_usd=(i % 1000) / 10_000,
            input_tokens=1000 + i % 5000,
            output_tokens=100 + i % 900,
            cache_read_tokens=i % 20_000,
            cache_creation_tokens=i % 700,
            model=MODELS[i % len(MODELS)],
            error_message="tool failed" if i % 17 == 0 else None,
            source="bench",
        )
        for i in range(count)
    ]


def schema_engine(url: str, schema: str) -> Engine:
    """An engine for the PostgreSQL database `url` whose tables live in `schema`."""
    separator = "&" if "?" in url else "?"
    return make_engine(f"{url}{separator}options=-csearch_path%3D{schema}")


@contextmanager
def fresh_database(url: str | None, zones: list[str] | None = None) -> Iterator[Engine]:
    """A migrated, empty database: a temporary SQLite file, or a new schema in `url`; keeping
    the days of `zones` as daily rollups."""
    if url is None:
        with tempfile.TemporaryDirectory() as directory:
            engine = make_engine(f"sqlite:///{Path(directory) / 'bench.db'}")
            upgrade(engine)
            keep_days(engine, start_hours(zones or []))
            yield engine
            engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = schema_engine(url, schema)
    try:
        upgrade(engine)
        keep_days(engine, start_hours(zones or []))
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def raw_insert(engine: Engine, events: list[UsageEvent], batch: int = BATCH) -> float:
    """The limit: the same rows, prepared in advance, through the driver's `executemany` into
    the table alone (no rollups)."""
    rows = [event_row(event) for event in events]
    columns = list(rows[0])
    marker = "?" if engine.dialect.name == "sqlite" else "%s"
    sql = (
        f"INSERT INTO agent_usage ({', '.join(columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    sqlite = engine.dialect.name == "sqlite"

    def value(v: object) -> object:
        if isinstance(v, datetime) and sqlite:
            return v.replace(tzinfo=None).isoformat(sep=" ")
        if isinstance(v, uuid.UUID) and sqlite:
            return v.hex
        return v

    tuples = [tuple(value(row[c]) for c in columns) for row in rows]
    connection = engine.raw_connection()
    try:
        started = time.perf_counter()
        cursor = connection.cursor()
        for i in range(0, len(tuples), batch):
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(sql, tuples[i : i + batch])
            connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def hook_path(engine: Engine, events: list[UsageEvent]) -> tuple[float, list[int]]:
    """Emit every event through the tracker and wait until all are stored."""
    tracker = build_tracker(engine, load_entrypoints=False)
    holds: list[int] = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for event in events:
        before = clock()
        tracker.emit(event)
        holds.append(clock() - before)
    tracker.flush()
    elapsed = time.perf_counter() - started
    tracker.close()
    if tracker.stats.stored != len(events):
        raise SystemExit(f"only {tracker.stats.stored} of {len(events)} events were stored")
    return elapsed, holds


def bulk_ingest(engine: Engine, events: list[UsageEvent], batch: int = BATCH) -> float:
    """Hand the events to the recorder in batches, as `claude-api demo` and imports do: one
    transaction per batch, rollups included."""
    recorder = Recorder(engine)
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        recorder.usage_batch(events=events[i : i + batch])
    return time.perf_counter() - started


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM agent_usage")).scalar_one()


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite temp file)")
    parser.add_argument(
        "--time-zones",
        type=lambda text: [zone.strip() for zone in text.split(",") if zone.strip()],
        default=[],
        help="keep the days of these zones (comma-separated) as daily rollups",
    )
    args = parser.parse_args()

    events = make_finished_events(args.events)
    zones = args.time_zones
    with fresh_database(args.database_url, zones) as engine:
        backend = engine.dialect.name
        raw_seconds = raw_insert(engine, events)
        assert count(engine) == len(events)
    with fresh_database(args.database_url, zones) as engine:
        hook_seconds, holds = hook_path(engine, events)
        assert count(engine) == len(events)
    with fresh_database(args.database_url, zones) as engine:
        bulk_seconds = bulk_ingest(engine, events)
        assert count(engine) == len(events)

    n = len(events)
    print(f"backend: {backend}, events: {n:,}, days kept of: {', '.join(zones) or 'UTC only'}")
    print(f"raw executemany : {raw_seconds:7.3f} s  {n / raw_seconds:>10,.0f} events/s")
    print(f"hook path       : {hook_seconds:7.3f} s  {n / hook_seconds:>10,.0f} events/s")
    print(f"bulk ingest     : {bulk_seconds:7.3f} s  {n / bulk_seconds:>10,.0f} events/s")
    print(f"ratio hook/raw  : {hook_seconds / raw_seconds:7.2f}x  (target <= 2x)")
    print(
        f"bulk/raw rate   : {raw_seconds / bulk_seconds:7.0%}   "
        "(bulk ingest events/s as a share of raw; target >= 50%)"
    )
    print(
        "emit hold       : "
        f"p50 {percentile(holds, 0.50) / 1000:.1f} us, "
        f"p99 {percentile(holds, 0.99) / 1000:.1f} us, "
        f"p99.9 {percentile(holds, 0.999) / 1000:.1f} us, "
        f"max {max(holds) / 1000:.1f} us, mean {statistics.fmean(holds) / 1000:.1f} us "
        "(target p99 < 200 us)"
    )


if __name__ == "__main__":
    main()
