"""PostgreSQL's monthly partitions: what the migration that makes them costs per million raw
rows, and what purging a month costs by dropping its partition against deleting its rows.

    python -m bench.bench_partitions --database-url postgresql+psycopg://... [--rows 300000]
                                     [--runs 3]

Each run fills two new schemas at revision 0008 (before partitions) with the same agent rows,
generated in SQL: two months, February and March 2026, a seventeenth failed with a message. Then

- migration: `upgrade` to head on one, against the baseline of rewriting the same table the
  plainest way (`CREATE TABLE ... AS SELECT`, then the same key and indexes);
- purge of February: `purge` on the migrated one (detach the month, take its ids out of the
  registry in batches of 10,000, drop it), against, on the other, the batches of 10,000
  `DELETE`s by id that the purge ran before partitions;
- the `VACUUM` that reclaims what each purge left dead: on the partitioned database the
  registry's rows of the month (the month's own rows and indexes went with its table), on the
  plain one the month's rows and their entries in the table's seven indexes.

Figures are medians over the runs; each ratio pairs timings of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, text

from claude_api.models.db import make_engine, upgrade
from claude_api.models.retention import purge

START = datetime(2026, 2, 1, tzinfo=UTC)
SECONDS = 59 * 86_400  # February and March
FILL = """INSERT INTO agent_usage (event_id, agent_name, task_id, project_id, timestamp,
    finished_at, status, duration_seconds, cost_usd, cost_source, input_tokens, output_tokens,
    cache_read_tokens, cache_creation_tokens, model, error_message, source)
SELECT gen_random_uuid(), 'agent-' || (i % 40), 'task-' || (i / 5), 'project-' || (i % 5),
    t, t + interval '12 seconds', CASE WHEN i % 17 = 0 THEN 'failed' ELSE 'completed' END,
    1 + (i % 300) / 10.0, (i % 1000) / 10000.0, 'reported', 1000 + i % 5000, 100 + i % 900,
    i % 20000, i % 700, 'claude-sonnet-4-5',
    CASE WHEN i % 17 = 0 THEN 'tool failed: exit status 1' END, 'bench'
FROM generate_series(0, :rows - 1) AS i,
    LATERAL (SELECT :start + (i::float8 * :step) * interval '1 second' AS t) AS moment"""
BASELINE_COPY = (
    "CREATE TABLE rewritten AS SELECT * FROM agent_usage",
    "ALTER TABLE rewritten ADD PRIMARY KEY (id, timestamp)",
    "CREATE UNIQUE INDEX ON rewritten (event_id, timestamp)",
    *(
        f"CREATE INDEX ON rewritten ({column})"
        for column in ("agent_name", "parent_id", "project_id", "task_id", "timestamp")
    ),
    "CREATE INDEX ON rewritten (timestamp) WHERE status = 'running'",
)
OLD_PURGE = (
    "DELETE FROM agent_usage WHERE id IN (SELECT id FROM agent_usage "
    "WHERE timestamp < :before ORDER BY id LIMIT 10000)"
)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 31, 12, tzinfo=UTC)  # 30 days of raw rows kept: from March 1


@contextmanager
def schema(url: str) -> Iterator[Engine]:
    """An engine on a new schema of `url` at revision 0008, filled; dropped afterwards."""
    name = f"bench_partitions_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    separator = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{separator}options=-csearch_path%3D{name}")
    try:
        upgrade(engine, "0008")
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def fill(engine: Engine, rows: int) -> None:
    with engine.begin() as connection:
        connection.execute(text(FILL), {"rows": rows, "start": START, "step": SECONDS / rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE agent_usage"))


def timed(function: Callable[..., object], *arguments: object) -> float:
    started = time.perf_counter()
    function(*arguments)
    return time.perf_counter() - started


def rewrite(engine: Engine) -> None:
    with engine.begin() as connection:
        for statement in BASELINE_COPY:
            connection.execute(text(statement))


def delete_in_batches(engine: Engine) -> int:
    total = 0
    while True:
        with engine.begin() as connection:
            deleted = connection.execute(text(OLD_PURGE), {"before": MARCH}).rowcount
        total += deleted
        if deleted < 10_000:
            return total


def vacuum(engine: Engine, table: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM {table}"))


def run(url: str, rows: int) -> dict[str, float]:
    with schema(url) as partitioned, schema(url) as plain:
        fill(partitioned, rows)
        fill(plain, rows)
        copy = timed(rewrite, plain)
        with plain.begin() as connection:
            connection.execute(text("DROP TABLE rewritten"))
        migrate = timed(upgrade, partitioned)
        with partitioned.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
        with plain.connect() as connection:
            february = connection.execute(
                text("SELECT count(*) FROM agent_usage WHERE timestamp < :before"),
                {"before": MARCH},
            ).scalar_one()
        dropped = time.perf_counter()
        result = purge(partitioned, raw_retention_days=30, rollup_retention_days=None, now=NOW)
        dropped = time.perf_counter() - dropped
        assert result.agent_rows == february, (result, february)
        deleted = time.perf_counter()
        assert delete_in_batches(plain) == february
        deleted = time.perf_counter() - deleted
        vacuum_registry = timed(vacuum, partitioned, "invocation_ids")
        vacuum_table = timed(vacuum, plain, "agent_usage")
    return {
        "migrate": migrate,
        "copy": copy,
        "drop": dropped,
        "delete": deleted,
        "vacuum_registry": vacuum_registry,
        "vacuum_table": vacuum_table,
        "february": february,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [run(args.database_url, args.rows) for _ in range(args.runs)]
    for number, figures in enumerate(runs, 1):
        print(
            f"run {number}: migration {figures['migrate']:.2f} s (plain rewrite "
            f"{figures['copy']:.2f} s); purge of {figures['february']:,.0f} rows: drop "
            f"{figures['drop']:.2f} s, delete {figures['delete']:.2f} s; vacuum after: "
            f"registry {figures['vacuum_registry']:.2f} s, table {figures['vacuum_table']:.2f} s",
            flush=True,
        )

    def median(name: str) -> float:
        return statistics.median(figures[name] for figures in runs)

    def ratio(top: str, bottom: str) -> float:
        return statistics.median(figures[top] / figures[bottom] for figures in runs)

    def ratio_of_sums() -> float:
        return statistics.median(
            (f["delete"] + f["vacuum_table"]) / (f["drop"] + f["vacuum_registry"]) for f in runs
        )

    per_million = 1_000_000 / args.rows
    print(
        f"migration: {median('migrate') * per_million:.1f} s per million rows, "
        f"{ratio('migrate', 'copy'):.2f}x a plain rewrite of the table "
        f"({median('copy') * per_million:.1f} s per million)"
    )
    print(
        f"purge of a month ({median('february'):,.0f} rows): dropping its partition "
        f"{median('drop'):.2f} s, deleting its rows {median('delete'):.2f} s: "
        f"{ratio('delete', 'drop'):.2f}x the time of the drop"
    )
    print(
        "with the VACUUM that reclaims the dead rows: dropping "
        f"{median('drop') + median('vacuum_registry'):.2f} s "
        f"(registry {median('vacuum_registry'):.2f} s), deleting "
        f"{median('delete') + median('vacuum_table'):.2f} s "
        f"(table {median('vacuum_table'):.2f} s): "
        f"{ratio_of_sums():.2f}x the time of the drop"
    )


if __name__ == "__main__":
    main()
