"""Query latency over the rollups, against the same queries over the raw rows and a plain
GROUP BY, as the data grows.

    python -m bench.bench_queries [--database-url URL] [--sizes 10000,1000000,10000000]
                                  [--repeat 20] [--keep DIR] [--skip-raw]

For each size, a fresh database is filled with `claude-api demo` data (the recorder's bulk path,
batches of 10,000; the fill rate is printed), then every query runs once to warm up and
`--repeat` times more, each in a fresh session and computed afresh (answers kept by the query
layer's cache are not used: the figures are the computation's); the table gives the median and
p95 in milliseconds and the ratio of the median to the baseline, a plain
`SELECT agent_name, count(*), sum(cost_usd), avg(duration_seconds) FROM agent_usage GROUP BY
agent_name`. The same queries inside `reading_raw_rows()` compute from the raw rows only; a
measurement whose warm-up takes over a second runs only three times. PostgreSQL: pass a URL of
an empty database; the benchmark creates and drops its own schema there.

Filling 10,000,000 events takes a while (the fill rate is printed); with `--keep DIR` each
size's database is kept after the run (SQLite: `DIR/queries-<size>.db`; PostgreSQL: schema
`bench_queries_<size>`) and reused by the next run with `--keep`, whose queries then take the
last stored event as "now"; a fill cut short is resumed where it stopped (the same day: the
demo data's days end on the day of the fill).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session

from bench.bench_tracking import fresh_database, schema_engine
from claude_api.demo import batches_ahead, generate_events
from claude_api.events import Kind
from claude_api.models import queries
from claude_api.models.db import make_engine, upgrade
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.plugins.recorder import Recorder

BATCH = 10_000
SEED = 7
SLOW_SECONDS = 1.0  # a measurement whose warm-up takes longer runs SLOW_REPEAT times
SLOW_REPEAT = 3
TARGET_MS = 20.0
FLAT_GROWTH = 2.0
BASELINE_SQL = (
    "SELECT agent_name, count(*), sum(cost_usd), avg(duration_seconds) "
    "FROM agent_usage GROUP BY agent_name"
)

Query = Callable[[Session], Any]


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p95_ms: float
    runs: int


@dataclass(frozen=True)
class Fill:
    events: int
    seconds: float
    storing_seconds: float


def fill_demo(
    engine: Engine, count: int, *, end: datetime, seed: int = SEED, skip: int = 0
) -> Fill:
    """Store `count` demo events ending at `end` through the recorder, as `claude-api demo`
    does, after the first `skip` of them (an interrupted fill, resumed the same day); how
    long it took, and how much of it was the recorder's."""
    recorder = Recorder(engine)
    generated = islice(generate_events(count, seed=seed, end=end), skip, None)
    storing = 0.0
    started = time.perf_counter()
    for batch in batches_ahead(generated, BATCH):
        before = time.perf_counter()
        recorder.usage_batch(events=batch)
        storing += time.perf_counter() - before
    return Fill(count - skip, time.perf_counter() - started, storing)


@contextmanager
def kept_database(url: str | None, directory: Path, size: int) -> Iterator[Engine]:
    """A migrated database kept after use, named by its size: a SQLite file in `directory`, or
    a schema in `url`."""
    if url is None:
        directory.mkdir(parents=True, exist_ok=True)
        engine = make_engine(f"sqlite:///{directory.resolve() / f'queries-{size}.db'}")
    else:
        schema = f"bench_queries_{size}"
        admin = create_engine(url)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        admin.dispose()
        engine = schema_engine(url, schema)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


LIVE_SOURCE = "bench-live"  # the source of the invocations `bench_dashboard --live` records


def stored(engine: Engine) -> tuple[int, datetime | None]:
    """How many invocations the database holds (not counting those `bench_dashboard --live`
    recorded), and when the last one started."""
    with Session(engine) as session:
        count = sum(
            session.execute(
                text(f"SELECT count(*) FROM {table} WHERE coalesce(source, '') <> '{LIVE_SOURCE}'")
            ).scalar_one()
            for table in ("agent_usage", "skill_usage")
        )
        last = session.execute(text("SELECT max(timestamp) FROM agent_usage")).scalar()
    if isinstance(last, str):  # SQLite keeps UTC times as text
        last = datetime.fromisoformat(last).replace(tzinfo=UTC)
    return count, last


def raw_rows_context() -> Callable[[], AbstractContextManager[None]] | None:
    """`reading_raw_rows` when the query layer has it."""
    return getattr(queries, "reading_raw_rows", None)


def the_queries(popular_agent: str, now: datetime) -> dict[str, Query]:
    """The query-layer calls measured, by label."""
    month_ago = now - timedelta(days=30)
    agents_30d = UsageFilter(kind=Kind.AGENT, since=month_ago)
    return {
        "usage_stats agents, 30 days": lambda s: queries.usage_stats(s, filter=agents_30d),
        "usage_stats agents, all time": lambda s: queries.usage_stats(
            s, filter=UsageFilter(kind=Kind.AGENT)
        ),
        "usage_stats one agent, all time": lambda s: queries.usage_stats(
            s, filter=UsageFilter(kind=Kind.AGENT, name=popular_agent)
        ),
        "leaderboard usage, 30 days": lambda s: queries.leaderboard(
            s, filter=agents_30d, metric=LeaderboardMetric.USAGE
        ),
        "usage_by_period day x30, UTC": lambda s: queries.usage_by_period(
            s, filter=UsageFilter(), period=Period.DAY, now=now
        ),
        "usage_by_period day x30, New York": lambda s: queries.usage_by_period(
            s, filter=UsageFilter(tz="America/New_York"), period=Period.DAY, now=now
        ),
        "usage_report month": lambda s: queries.usage_report(s, period=Period.MONTH, now=now),
    }


def baseline(session: Session) -> list[Any]:
    if session.get_bind().dialect.name == "postgresql":
        # The service's engine plans serially; the baseline gets PostgreSQL's parallel workers.
        session.execute(text("SET LOCAL max_parallel_workers_per_gather TO DEFAULT"))
    return list(session.execute(text(BASELINE_SQL)))


def measure(
    engine: Engine,
    query: Query,
    repeat: int,
    context: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> tuple[Timing, Any]:
    """Time `query` in a fresh session each run, after one warm-up run; and its answer."""

    def run() -> tuple[float, Any]:
        with context(), queries.computing_afresh():
            started = time.perf_counter()
            with Session(engine) as session:
                answer = query(session)
            return time.perf_counter() - started, answer

    warm_up, answer = run()
    runs = SLOW_REPEAT if warm_up > SLOW_SECONDS else repeat
    seconds = sorted(run()[0] for _ in range(runs))
    p95 = seconds[max(0, math.ceil(0.95 * len(seconds)) - 1)]
    return Timing(statistics.median(seconds) * 1000, p95 * 1000, runs), answer


def invocations(answer: Any) -> Any:
    """What must be equal between the rollup and raw answers: invocation counts."""
    if isinstance(answer, list | tuple):
        return [invocations(item) for item in answer]
    for nested in ("buckets", "items"):
        if hasattr(answer, nested):
            return invocations(getattr(answer, nested))
    if hasattr(answer, "totals"):
        return (answer.totals.invocations, answer.previous_totals.invocations)
    return getattr(answer, "invocations", None)


def most_used_agent(engine: Engine) -> str:
    with Session(engine) as session:
        rows = baseline(session)
    return max(rows, key=lambda row: row[1])[0]


def analyze(engine: Engine) -> None:
    """Refresh PostgreSQL's planner statistics, as autovacuum would soon after a bulk load.
    SQLite keeps none unless asked, and this service does not ask."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


def run_size(
    url: str | None, size: int, repeat: int, keep: Path | None, raw: bool = True
) -> dict[str, Timing]:
    now = datetime.now(UTC)
    database = fresh_database(url) if keep is None else kept_database(url, keep, size)
    with database as engine:
        backend = engine.dialect.name
        count, last = stored(engine)
        if count == size and last is not None:
            now = last + timedelta(seconds=1)
            print(f"\n{backend}, {size:,} events: kept from an earlier run, last at {last}")
        else:
            if count > size:
                raise SystemExit(f"the kept database holds {count:,} events, not {size:,}")
            filled = fill_demo(engine, size, end=now, skip=count)
            analyze(engine)
            rate = filled.events / filled.seconds
            storing_rate = filled.events / filled.storing_seconds
            print(
                f"\n{backend}, {size:,} events: stored {filled.events:,} in "
                f"{filled.seconds:,.1f} s ({rate:,.0f} events/s; storing "
                f"{filled.storing_seconds:,.1f} s, {storing_rate:,.0f} events/s)"
            )
        raw_context = raw_rows_context() if raw else None
        base, _ = measure(engine, baseline, repeat)
        rows: list[tuple[str, Timing, Timing | None, str]] = []
        fast_timings: dict[str, Timing] = {}
        for label, query in the_queries(most_used_agent(engine), now).items():
            fast, fast_answer = measure(engine, query, repeat)
            fast_timings[label] = fast
            slow = None
            check = ""
            if raw_context is not None:
                slow, slow_answer = measure(engine, query, repeat, raw_context)
                if invocations(fast_answer) != invocations(slow_answer):
                    check = "  ANSWERS DIFFER"
            rows.append((label, fast, slow, check))

    print(f"{'':34} {'rollups (ms)':>22}   {'raw rows (ms)':>24}   {'÷ GROUP BY median':>19}")
    print(
        f"{'query':34} {'median':>10} {'p95':>10}   {'median':>10} {'p95':>10} {'runs':>3}"
        f"   {'rollups':>9} {'raw':>9}"
    )
    for label, fast, slow, check in rows:
        slow_text = (
            f"{slow.median_ms:10.1f} {slow.p95_ms:10.1f} {slow.runs:>3}"
            if slow
            else f"{'n/a':>10} {'n/a':>10} {'':>3}"
        )
        ratio = f"{slow.median_ms / base.median_ms:9.3g}" if slow else f"{'n/a':>9}"
        print(
            f"{label:34} {fast.median_ms:10.2f} {fast.p95_ms:10.2f}   {slow_text}   "
            f"{fast.median_ms / base.median_ms:9.3g} {ratio}{check}"
        )
    print(
        f"{'baseline GROUP BY agent_name':34} {'':>10} {'':>10}   "
        f"{base.median_ms:10.1f} {base.p95_ms:10.1f} {base.runs:>3}"
    )
    if raw_context is None:
        print("(the raw-rows column is skipped)")
    return fast_timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite temp file)")
    parser.add_argument(
        "--sizes",
        default="10000,1000000,10000000",
        help="comma-separated numbers of events (default: 10000,1000000,10000000)",
    )
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per query")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep each size's filled database (SQLite files in DIR) and reuse it next time",
    )
    parser.add_argument(
        "--skip-raw", action="store_true", help="do not time the queries over the raw rows"
    )
    args = parser.parse_args()
    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()]

    by_size = {
        size: run_size(args.database_url, size, args.repeat, args.keep, not args.skip_raw)
        for size in sizes
    }
    print(
        f"\nrollup medians (ms) by size; target: under {TARGET_MS:.0f} ms at the largest size, "
        f"and flat (the largest at most {FLAT_GROWTH:.0f}x the smallest)"
    )
    print(f"{'query':34} " + " ".join(f"{size:>12,}" for size in sizes) + "   growth")
    for label in next(iter(by_size.values())):
        medians = [by_size[size][label].median_ms for size in sizes]
        growth = medians[-1] / medians[0]
        fast = "fast" if medians[-1] < TARGET_MS else "SLOW"
        flat = "flat" if growth <= FLAT_GROWTH else "GROWS"
        print(
            f"{label:34} "
            + " ".join(f"{m:12.2f}" for m in medians)
            + f"   {growth:5.1f}x  {fast}, {flat}"
        )


if __name__ == "__main__":
    main()
