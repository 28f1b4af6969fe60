"""Monthly partitions of the raw invocation tables on PostgreSQL, and the registry of event ids
that keeps one row per event id across them.

On PostgreSQL `agent_usage` and `skill_usage` are partitioned by range of `timestamp`: one
partition per UTC month (`agent_usage_p2026_05`), and a DEFAULT partition that takes the rows of
a month without one, so no write ever fails for want of a partition. Maintenance creates the
current and next months ahead of need and moves the months that reached the DEFAULT partition
into partitions of their own; retention detaches and drops the months wholly past its horizon.

A partitioned table's unique indexes must hold the partition key, so each partition knows only
(event id, timestamp). The event id alone is unique in `invocation_ids` (event id, start time,
kind): the write path claims its ids there first, in the same transaction, and writes each row
under the start time registered for its id (`claude_api.models.write`). SQLite keeps one plain
table per kind and has no registry.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from claude_api.models import data_version
from claude_api.models.tables import USAGE_TABLES
from claude_api.models.types import UTCDateTime

logger = logging.getLogger(__name__)

PARTITIONED = tuple(model.__tablename__ for model in USAGE_TABLES.values())
# DDL here waits at most this long for its locks: a queued ACCESS EXCLUSIVE request would hold
# up every reader and writer behind it. What cannot get its locks is left for the next time.
LOCK_TIMEOUT = "5s"
_LOCK_NOT_AVAILABLE = "55P03"

# PostgreSQL only: the one row of each event id among the usage tables' partitions.
METADATA = sa.MetaData()
REGISTRY = sa.Table(
    "invocation_ids",
    METADATA,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
)

_NAME = re.compile(
    rf"^(?:{'|'.join(PARTITIONED)})_(?:p\d{{4}}_\d{{2}}|default|purging_\d{{4}}_\d{{2}})$"
)


def is_partition_name(name: str) -> bool:
    """Whether `name` is that of a partition of a usage table (or one being purged)."""
    return bool(_NAME.match(name))


def month_of(moment: datetime) -> datetime:
    """The start of the UTC month holding `moment`."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(month: datetime) -> datetime:
    """The start of the month after the month starting at `month`."""
    return (
        month.replace(year=month.year + 1, month=1)
        if month.month == 12
        else month.replace(month=month.month + 1)
    )


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y_%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


def purging_name(table: str, month: datetime) -> str:
    """The name a month's partition takes once detached for purging."""
    return f"{table}_purging_{month:%Y_%m}"


def _month_in(name: str, prefix: str) -> datetime | None:
    found = re.fullmatch(rf"{re.escape(prefix)}(\d{{4}})_(\d{{2}})", name)
    return datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC) if found else None


def _literal(moment: datetime) -> str:
    return f"'{moment.astimezone(UTC).isoformat()}'"  # DDL takes no parameters: made here


def _bounds(month: datetime) -> str:
    return f"FROM ({_literal(month)}) TO ({_literal(next_month(month))})"


def is_partitioned(connection: Connection, table: str) -> bool:
    """Whether `table` is a partitioned table (PostgreSQL, after the migration that made it)."""
    found = connection.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:table)"), {"table": table}
    ).scalar()
    return found == "p"


def attached_months(connection: Connection, table: str) -> list[datetime]:
    """The months that have a partition of `table`, in order (the DEFAULT partition aside)."""
    names = connection.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:table)"
        ),
        {"table": table},
    ).scalars()
    return sorted(m for name in names if (m := _month_in(name, f"{table}_p")) is not None)


def purging_months(connection: Connection, table: str) -> list[datetime]:
    """The months whose partition of `table` was detached for purging and is not dropped yet
    (a purge stopped, or its process died, before it was done)."""
    names = connection.execute(
        sa.text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE :pattern "
            "AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        ),
        {"pattern": f"{table}_purging_%"},
    ).scalars()
    prefix = f"{table}_purging_"
    return sorted(m for name in names if (m := _month_in(name, prefix)) is not None)


def months_in_default(
    connection: Connection, table: str, *, since: datetime | None
) -> list[datetime]:
    """The months (from the month of `since` on; None: all) of the rows waiting in the DEFAULT
    partition of `table`, found by skipping through its timestamp index a month at a time."""
    start = month_of(since) if since is not None else datetime(1, 1, 1, tzinfo=UTC)
    default = default_name(table)
    # Month arithmetic in UTC: on a timestamptz it would follow the session's time zone.
    first = (
        "SELECT date_trunc('month', min(timestamp), 'UTC') AS month FROM {default} "
        "WHERE timestamp >= {after}"
    )
    later = "((m.month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'"
    statement = (
        f"WITH RECURSIVE m(month) AS ({first.format(default=default, after=':start')} "
        f"UNION ALL SELECT ({first.format(default=default, after=later)}) FROM m "
        "WHERE m.month IS NOT NULL) SELECT month FROM m WHERE month IS NOT NULL"
    )
    found = connection.execute(sa.text(statement), {"start": start}).scalars()
    return [month_of(month) for month in found]


def create_default(connection: Connection, table: str) -> None:
    """Create the DEFAULT partition of `table`."""
    connection.exec_driver_sql(f"CREATE TABLE {default_name(table)} PARTITION OF {table} DEFAULT")


def create_empty_month(connection: Connection, table: str, month: datetime) -> None:
    """Create the partition of `month` of `table` in place (the parent is locked in ACCESS
    EXCLUSIVE mode: for the migration, before there is a DEFAULT partition)."""
    connection.exec_driver_sql(
        f"CREATE TABLE {partition_name(table, month)} PARTITION OF {table} "
        f"FOR VALUES {_bounds(month)}"
    )


def create_month(connection: Connection, table: str, month: datetime) -> int:
    """Create the partition of `month` of `table`, moving into it the rows of that month that
    wait in the DEFAULT partition, in the connection's transaction; returns how many moved.

    The partition is made apart and attached, which locks the parent in SHARE UPDATE EXCLUSIVE
    mode (reads and writes go on). The DEFAULT partition is locked against writes first: a
    row of the month that reached it after the move, from a writer that had not committed,
    would make the attach fail.
    """
    name, default = partition_name(table, month), default_name(table)
    lower, upper = _literal(month), _literal(next_month(month))
    connection.exec_driver_sql(f"LOCK TABLE {default} IN EXCLUSIVE MODE")
    connection.exec_driver_sql(
        f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    moved = connection.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {default} WHERE timestamp >= {lower} AND timestamp < "
        f"{upper} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
    ).rowcount
    # A constraint that proves the bounds spares ATTACH a scan of the new partition.
    connection.exec_driver_sql(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_bounds "
        f"CHECK (timestamp >= {lower} AND timestamp < {upper})"
    )
    connection.exec_driver_sql(
        f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {_bounds(month)}"
    )
    connection.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bounds")
    return moved


def missing_months(
    engine: Engine, *, now: datetime, since: datetime | None = None, waiting: bool = True
) -> dict[str, list[datetime]]:
    """Per usage table, the months without a partition among that of `now`, the next one and,
    with `waiting`, every month (from the month of `since` on) whose rows wait in the DEFAULT
    partition; nothing on a database the migration did not partition."""
    current = month_of(now)
    missing = {}
    with engine.connect() as connection:
        for table in PARTITIONED:
            if not is_partitioned(connection, table):
                return {}
            wanted = {current, next_month(current)}
            if waiting:
                wanted.update(months_in_default(connection, table, since=since))
            attached = set(attached_months(connection, table))
            if wanted - attached:
                missing[table] = sorted(wanted - attached)
    return missing


def ensure_months(
    engine: Engine, *, now: datetime, since: datetime | None = None, waiting: bool = True
) -> list[str]:
    """Create the partitions `missing_months` names, each in a transaction of its own, moving
    into it the rows of its month from the DEFAULT partition; returns those created. The caller
    holds the purge lock, so that two processes never create the same partition. A partition
    that cannot have its locks within `LOCK_TIMEOUT` is left for the next maintenance; its rows
    go on into the DEFAULT partition.
    """
    created = []
    for table, months in missing_months(engine, now=now, since=since, waiting=waiting).items():
        for month in months:
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    moved = create_month(connection, table, month)
                    if moved:
                        data_version.changed(connection)
            except sa.exc.OperationalError as error:
                if not lock_not_available(error):
                    raise
                logger.warning(
                    "partition %s not created: its locks were busy for %s; its rows go on "
                    "into %s until the next maintenance",
                    partition_name(table, month),
                    LOCK_TIMEOUT,
                    default_name(table),
                )
                continue
            name = partition_name(table, month)
            created.append(name)
            logger.info(
                "created partition %s%s",
                name,
                f" and moved its {moved:,} rows out of {default_name(table)}" if moved else "",
            )
    return created


def lock_not_available(error: sa.exc.DBAPIError) -> bool:
    """Whether `error` is PostgreSQL's lock timeout."""
    return getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE


def detach_month(engine: Engine, table: str, month: datetime) -> bool:
    """Detach the partition of `month` from `table` and rename it for purging (one short
    transaction, which locks the parent in ACCESS EXCLUSIVE mode); False when its locks were
    busy for `LOCK_TIMEOUT`, and nothing changed."""
    name = partition_name(table, month)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            connection.exec_driver_sql(f"ALTER TABLE {table} DETACH PARTITION {name}")
            connection.exec_driver_sql(f"ALTER TABLE {name} RENAME TO {purging_name(table, month)}")
            data_version.changed(connection)
    except sa.exc.OperationalError as error:
        if not lock_not_available(error):
            raise
        logger.warning(
            "partition %s not detached: its locks were busy for %s; its rows are deleted "
            "one by one instead",
            name,
            LOCK_TIMEOUT,
        )
        return False
    return True


def count_rows(connection: Connection, name: str) -> int:
    return int(connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())


def forget_ids(
    connection: Connection, table: str, month: datetime, *, after: UUID | None, size: int
) -> tuple[int, UUID | None]:
    """Delete from the registry the ids of the next `size` rows (in event id order, after
    `after`) of the partition of `month` detached for purging; returns how many rows the batch
    held and its last event id."""
    name = purging_name(table, month)
    start = "" if after is None else "WHERE event_id > :after"
    found = connection.execute(
        sa.text(
            f"WITH batch AS (SELECT event_id FROM {name} {start} ORDER BY event_id LIMIT :size), "
            "gone AS (DELETE FROM invocation_ids r USING batch b WHERE r.event_id = b.event_id "
            "AND r.timestamp >= :lower AND r.timestamp < :upper) "
            "SELECT count(*), (SELECT event_id FROM batch ORDER BY event_id DESC LIMIT 1) "
            "FROM batch"
        ),
        {"after": after, "size": size, "lower": month, "upper": next_month(month)},
    ).one()
    return int(found[0]), found[1]


def drop_purging(connection: Connection, table: str, month: datetime) -> None:
    connection.exec_driver_sql(f"DROP TABLE {purging_name(table, month)}")


def delete_before(connection: Connection, table: str, before: datetime, *, size: int) -> int:
    """Delete the (at most `size`) earliest rows of `table` that started before `before`, and
    their ids from the registry; returns how many rows went. Partition pruning keeps it to the
    partitions that reach before `before`: the one that straddles it, and the DEFAULT one.

    The registry rows go first: a writer claims an id there before it touches its row, so
    both take their locks in the same order."""
    keys = connection.execute(
        sa.text(
            f"SELECT id, event_id FROM {table} WHERE timestamp < :before "
            "ORDER BY timestamp LIMIT :size"
        ),
        {"before": before, "size": size},
    ).all()
    if not keys:
        return 0
    connection.execute(
        sa.text("DELETE FROM invocation_ids WHERE event_id = ANY(:ids) AND timestamp < :before"),
        {"ids": [row[1] for row in keys], "before": before},
    )
    return connection.execute(
        sa.text(f"DELETE FROM {table} WHERE timestamp < :before AND id = ANY(:ids)"),
        {"ids": [row[0] for row in keys], "before": before},
    ).rowcount
