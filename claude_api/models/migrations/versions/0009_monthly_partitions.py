"""PostgreSQL: keep agent_usage and skill_usage in monthly partitions, and each event id once in
invocation_ids (see claude_api.models.partitions). SQLite: nothing changes.

Each table is renamed, a partitioned table of the same columns takes its name (and its id
sequence), with a partition per month that has rows, the current and next months and a
DEFAULT partition; the rows are copied over, then the primary key (id, timestamp) and the
indexes are built on each partition at once, the event id index with the timestamp added.
The registry is filled from the old tables and indexed after, and the old tables dropped.

It runs in one transaction that holds the usage tables the whole time: writes wait (producers
retry or spool), reads of raw rows wait. On a shared 2-core machine it took 13-25 s per
million invocations, about twice a plain rewrite of the table (bench/RESULTS.md, "Monthly
partitions"), and it needs free disk for a second copy of the raw rows and their indexes
until it commits.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import op
from sqlalchemy import Connection

from claude_api.models import partitions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = {"agent_usage": "agent_name", "skill_usage": "skill_name"}
_OLD = "{table}_unpartitioned"
_REGISTRY = """CREATE TABLE invocation_ids (
    event_id UUID NOT NULL,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    kind VARCHAR(16) NOT NULL
)"""


def _indexes(table: str, *, partitioned: bool) -> list[str]:
    """The indexes of a usage table as the models name them; the event id's holds the
    partition key too when the table is partitioned."""
    event_id = "event_id, timestamp" if partitioned else "event_id"
    return [
        f"CREATE UNIQUE INDEX ix_{table}_event_id ON {table} ({event_id})",
        *(
            f"CREATE INDEX ix_{table}_{column} ON {table} ({column})"
            for column in (_TABLES[table], "parent_id", "project_id", "task_id", "timestamp")
        ),
        f"CREATE INDEX ix_{table}_running ON {table} (timestamp) WHERE status = 'running'",
    ]


def _index_names(table: str) -> list[str]:
    columns = ("event_id", _TABLES[table], "parent_id", "project_id", "task_id", "timestamp")
    return [f"ix_{table}_{column}" for column in (*columns, "running")]


def _move_aside(bind: Connection, table: str, new_name: str) -> str:
    """Rename `table`, free its index and key names, and return its id sequence."""
    sequence = bind.exec_driver_sql(f"SELECT pg_get_serial_sequence('{table}', 'id')").scalar()
    bind.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {new_name}")
    bind.exec_driver_sql(f"ALTER TABLE {new_name} DROP CONSTRAINT {table}_pkey")
    for index in _index_names(table):
        bind.exec_driver_sql(f"DROP INDEX {index}")
    return str(sequence)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    current = partitions.month_of(datetime.now(UTC))
    for table in _TABLES:
        old = _OLD.format(table=table)
        sequence = _move_aside(bind, table, old)
        bind.exec_driver_sql(
            f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            "PARTITION BY RANGE (timestamp)"
        )
        bind.exec_driver_sql(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
        found = bind.exec_driver_sql(
            f"SELECT DISTINCT date_trunc('month', timestamp, 'UTC') FROM {old}"
        ).scalars()
        months = {partitions.month_of(month) for month in found}
        for month in sorted(months | {current, partitions.next_month(current)}):
            partitions.create_empty_month(bind, table, month)
        partitions.create_default(bind, table)
        bind.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {old}")
        bind.exec_driver_sql(
            f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id, timestamp)"
        )
        for statement in _indexes(table, partitioned=True):
            bind.exec_driver_sql(statement)
    # An id in both tables (two writers of different kinds racing, before the registry) keeps
    # the agent's: the skill's row stays, and an event of that id is refused as before.
    bind.exec_driver_sql(_REGISTRY)
    bind.exec_driver_sql(
        "INSERT INTO invocation_ids (event_id, timestamp, kind) "
        "SELECT DISTINCT ON (event_id) event_id, timestamp, kind FROM ("
        + " UNION ALL ".join(
            f"SELECT event_id, timestamp, '{table.removesuffix('_usage')}' AS kind "
            f"FROM {_OLD.format(table=table)}"
            for table in _TABLES
        )
        + ") AS ids ORDER BY event_id, kind"
    )
    bind.exec_driver_sql(
        "ALTER TABLE invocation_ids ADD CONSTRAINT invocation_ids_pkey PRIMARY KEY (event_id)"
    )
    for table in _TABLES:
        bind.exec_driver_sql(f"DROP TABLE {_OLD.format(table=table)}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in _TABLES:
        for month in partitions.purging_months(bind, table):
            partitions.drop_purging(bind, table, month)  # rows a purge had already taken out
        old = f"{table}_partitioned"
        sequence = _move_aside(bind, table, old)
        bind.exec_driver_sql(
            f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        bind.exec_driver_sql(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
        bind.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {old}")
        bind.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id)")
        for statement in _indexes(table, partitioned=False):
            bind.exec_driver_sql(statement)
        bind.exec_driver_sql(f"DROP TABLE {old}")  # and its partitions
    bind.exec_driver_sql("DROP TABLE invocation_ids")
