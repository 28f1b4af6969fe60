"""How the database grows: bytes of raw invocation rows and their indexes, and of the rollups,
per million invocations, on SQLite and PostgreSQL.

    python -m bench.bench_growth [--events 100000] [--database-url postgresql+psycopg://...]
                                 [--no-sqlite]

Each database is filled with `claude-api demo --events N` (realistic tasks: a main thread,
subagents and skills, errors, tokens and costs over 90 days) and measured: on PostgreSQL with
`pg_relation_size` (rows), `pg_indexes_size` and the TOAST of each table, its monthly
partitions counted as the raw rows they hold (each month of the demo's has its partition
before the fill, as on a server that ran through them), and the registry of event ids apart;
on SQLite with the `dbstat` table (every b-tree page, the indexes' own). Raw rows grow
linearly with invocations; the rollups grow with the distinct (hour, name, project, model, ...)
combinations, so their figure holds for data spread like the demo's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from claude_api.models import partitions
from claude_api.models.db import make_engine, upgrade
from claude_api.models.retention import purge

CLAUDE_API = Path(sys.executable).parent / "claude-api"
RAW = ("agent_usage", "skill_usage")


def fill(url: str, events: int) -> None:
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": url, "CLAUDE_API_RETENTION_DAYS": "0"}
    subprocess.run(
        [str(CLAUDE_API), "demo", "--events", str(events), "--days", "90", "--seed", "11"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip


def create_past_months(engine: Engine, *, days: int) -> None:
    """The partitions of the months of the last `days` days, as on a server that ran through
    them: the demo's rows land in their months, not in the DEFAULT partition (whose indexes
    would keep the space of the rows maintenance moves out of it)."""
    now = datetime.now(UTC)
    month = partitions.month_of(now - timedelta(days=days))
    with engine.begin() as connection:
        while month < partitions.month_of(now):
            for table in partitions.PARTITIONED:
                partitions.create_month(connection, table, month)
            month = partitions.next_month(month)


def invocations(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        count = sum(
            int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
            for table in RAW
        )
    engine.dispose()
    return count


def sqlite_sizes(path: Path) -> dict[str, int]:
    import sqlite3

    connection = sqlite3.connect(path)
    indexes = {
        name: table
        for name, table in connection.execute(
            "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index'"
        )
    }
    sizes = {"rows": 0, "indexes": 0, "registry": 0, "rollups": 0}
    for name, size in connection.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
        table = indexes.get(name, name)
        if table in RAW:
            sizes["indexes" if name in indexes else "rows"] += size
        elif table not in ("sqlite_schema",) and not table.startswith("sqlite_"):
            sizes["rollups"] += size
    connection.close()
    return sizes


def postgres_sizes(url: str) -> dict[str, int]:
    engine = create_engine(url)
    sizes = {"rows": 0, "indexes": 0, "registry": 0, "rollups": 0}
    with engine.connect() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        ]
        for table in tables:
            index, total = connection.execute(
                text(
                    "SELECT pg_indexes_size(c.oid), "
                    "pg_total_relation_size(c.oid) FROM pg_class c "
                    "WHERE c.oid = to_regclass(:name)"
                ),
                {"name": table},
            ).one()
            if table in RAW or partitions.is_partition_name(table):
                sizes["rows"] += total - index  # the heap and its TOAST
                sizes["indexes"] += index
            elif table == partitions.REGISTRY.name:
                sizes["registry"] += total  # its rows and its key
            elif table != "alembic_version":
                sizes["rollups"] += total
    engine.dispose()
    return sizes


def report(backend: str, count: int, sizes: dict[str, int]) -> None:
    per_million = {name: size / count * 1_000_000 for name, size in sizes.items()}
    raw = per_million["rows"] + per_million["indexes"] + per_million["registry"]
    rows, indexes = per_million["rows"] / 2**20, per_million["indexes"] / 2**20
    registry = per_million["registry"] / 2**20
    print(
        f"{backend:10} {count:>9,} invocations: per million, rows {rows:7.0f} MiB + indexes "
        f"{indexes:6.0f} MiB + id registry {registry:4.0f} MiB = {raw / 2**20:7.0f} MiB "
        f"({raw / 1_000_000:5.0f} bytes each); rollups {per_million['rollups'] / 2**20:6.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database-url", help="a PostgreSQL database (a schema is made there)")
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "growth.db"
            url = f"sqlite:///{path}"
            fill(url, args.events)
            report("SQLite", invocations(url), sqlite_sizes(path))
    if args.database_url:
        schema = f"bench_growth_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.database_url)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in args.database_url else "?"
        url = f"{args.database_url}{separator}options=-csearch_path%3D{schema}"
        try:
            engine = make_engine(url)
            upgrade(engine)
            create_past_months(engine, days=91)
            fill(url, args.events)
            # What the server's daily maintenance does (here it finds nothing to move).
            purge(engine, raw_retention_days=None, rollup_retention_days=None)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))
            engine.dispose()
            report("PostgreSQL", invocations(url), postgres_sizes(url))
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
