"""Keeping the rollups equal to the raw rows, inside the writer's transaction.

The write path tells which raw rows its upsert changed into finished ones (`ChangedRows`):
inserted rows and running rows it completed, never a duplicate or a replay, which the upsert
leaves alone. `fold` copies those rows once into a per-connection temporary table, with their
hour, day and month buckets and their duration bin computed, then adds them to the rollups,
duration bins and error counts with additive upserts, before the writer commits; the measure
rollups also get the days of every grain listed in `rollup_day_starts`. Rollup rows are
upserted in key order, so concurrent PostgreSQL writers lock them in one global order and
cannot deadlock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection

from claude_api.buckets import GRAINS, day_grain
from claude_api.events import Kind, Status
from claude_api.models.data_version import ANY_TIME
from claude_api.models.sketch import bin_sql
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES

_KEY = "kind, name, project_key"
# The rollup tables and their key columns after (grain, bucket_start).
BIN_TABLES = {
    "usage_duration_bins": _KEY,
    "usage_name_duration_bins": "name, kind",
    "usage_kind_duration_bins": "kind",
}
MEASURE_TABLES = {
    "usage_rollup": _KEY,
    "usage_model_rollup": f"{_KEY}, model_key, status",
    "usage_name_rollup": "kind, name",
    "usage_kind_rollup": "kind",
}
ERROR_TABLE = "usage_error_rollup"
DAY_STARTS_TABLE = "rollup_day_starts"  # the day grains kept besides UTC days
ROLLUP_TABLES = (*MEASURE_TABLES, *BIN_TABLES, ERROR_TABLE)
_RUNNING = f"'{Status.RUNNING.value}'"
_BATCH = "rollup_batch"
_GROUPS = "rollup_batch_groups"
# The measure columns, each a count or a sum over the batch's rows.
SUMMED = (
    "invocations", "completed", "failed", "cost_count", "cost_sum", "duration_count",
    "duration_sum", "input_count", "input_sum", "output_count", "output_sum",
    "cache_read_count", "cache_read_sum", "cache_creation_count", "cache_creation_sum",
)  # fmt: skip
_BATCH_COLUMNS = (
    "kind, name, project_key, model_key, status, timestamp, hour, day, month, "
    "duration_seconds, bin, cost_usd, input_tokens, output_tokens, cache_read_tokens, "
    "cache_creation_tokens, error_message"
)


@dataclass
class ChangedRows:
    """The raw rows of one kind that a write turned finished: on SQLite, whose writers take
    turns, the rows inserted after `after_id` plus the running rows `completed_ids`; on
    PostgreSQL the ids its upsert returned, which started from `first` to `last`: the rows are
    read from the monthly partitions of those times only."""

    after_id: int | None = None
    ids: list[int] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None


def bucket_sql(grain: str, column: str, dialect_name: str) -> str:
    """The SQL expression of the UTC `grain` bucket holding a timestamp column.

    SQLite stores timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text in UTC, so a bucket is a
    prefix of the text padded back to the same format; PostgreSQL truncates the timestamptz in
    UTC whatever the session's time zone.
    """
    if dialect_name == "postgresql":
        return f"date_trunc('{grain}', {column}, 'UTC')"
    prefix, padding = {
        "hour": (13, ":00:00.000000"),
        "day": (10, " 00:00:00.000000"),
        "month": (7, "-01 00:00:00.000000"),
    }[grain]
    return f"(substr({column}, 1, {prefix}) || '{padding}')"


def shifted_day_sql(column: str, start_hour: str, dialect_name: str) -> str:
    """The SQL expression of the start of the day holding a timestamp `column`, for days that
    start at the hour `start_hour` (an SQL integer expression) UTC."""
    if dialect_name == "postgresql":
        shift = f"make_interval(hours => {start_hour})"
        return f"(date_trunc('day', {column} - {shift}, 'UTC') + {shift})"
    # SQLite's timestamps are UTC text: the date `start_hour` hours earlier, at that hour.
    return (
        f"(datetime(date({column}, '-' || {start_hour} || ' hours'), "
        f"'+' || {start_hour} || ' hours') || '.000000')"
    )


def fill_day_grain(connection: Connection, start_hour: int) -> None:
    """Add to the measure rollups the days that start at `start_hour` UTC, summed from their
    hours: for a day grain added after rows were folded (the hours hold every finished
    invocation, purged raw rows included)."""
    grain = day_grain(start_hour)  # checks the hour, so both are safe to write in the SQL
    shifted = shifted_day_sql("bucket_start", str(start_hour), connection.dialect.name)
    sums = ", ".join(f"sum({name})" for name in SUMMED)
    for table, key in MEASURE_TABLES.items():
        connection.exec_driver_sql(
            f"""INSERT INTO {table} (grain, bucket_start, {key}, {", ".join(SUMMED)},
    first_seen, last_seen)
SELECT '{grain}', {shifted}, {key}, {sums}, min(first_seen), max(last_seen)
FROM {table} WHERE grain = 'hour'
GROUP BY {shifted}, {key}
ORDER BY {shifted}, {key}"""
        )


def fold(connection: Connection, changed: dict[Kind, ChangedRows]) -> datetime | None:
    """Add the rows `changed` names to the rollups; returns the earliest start among them
    (None when there were none), or `ANY_TIME` when it is not known."""
    dialect_name = connection.dialect.name
    _run(connection, _create_batch_sql(dialect_name))
    staged = False
    for kind, rows in changed.items():
        where, parameters = _changed_condition(rows, dialect_name)
        if where is not None:
            connection.exec_driver_sql(_stage_sql(kind, dialect_name, where), parameters)
            staged = True
    if not staged:
        return None
    earliest = _earliest_staged(connection, changed)
    _run(connection, fold_statements(dialect_name))
    return earliest


def _earliest_staged(connection: Connection, changed: dict[Kind, ChangedRows]) -> datetime | None:
    if connection.dialect.name == "postgresql":  # the upsert returned its rows' first start
        firsts = [rows.first for rows in changed.values() if rows.ids]
        return ANY_TIME if None in firsts else min(firsts, default=None)  # type: ignore[type-var]
    found = connection.exec_driver_sql(f"SELECT min(timestamp) FROM {_BATCH}").scalar()
    return None if found is None else datetime.fromisoformat(found).replace(tzinfo=UTC)


def backfill(
    connection: Connection,
    tables: tuple[str, ...] | None = None,
    summed: tuple[str, ...] = SUMMED,
) -> None:
    """Add every finished raw row to the rollup `tables` (default: all), for rows written before
    they existed; a migration names the tables and the `summed` measures of its time."""
    dialect_name = connection.dialect.name
    _run(connection, _create_batch_sql(dialect_name))
    for kind in Kind:
        connection.exec_driver_sql(_stage_sql(kind, dialect_name, "true"))
    # A migration's backfill names its tables, and runs before rollup_day_starts exists.
    statements = fold_statements(dialect_name, tables or ROLLUP_TABLES, summed, tables is None)
    _run(connection, statements)


def _run(connection: Connection, statements: tuple[str, ...]) -> None:
    """Run parameterless `statements` in order: on PostgreSQL as one script, one round trip
    instead of one each (a small batch's fold is mostly round trips)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(";\n".join(statements))
        return
    for statement in statements:
        connection.exec_driver_sql(statement)


def _changed_condition(rows: ChangedRows, dialect_name: str) -> tuple[str | None, Any]:
    marker = "%(ids)s" if dialect_name == "postgresql" else ":ids"
    listed = (
        f"id = ANY({marker})"
        if dialect_name == "postgresql"
        else f"id IN (SELECT value FROM json_each({marker}))"
    )
    ids: Any = rows.ids if dialect_name == "postgresql" else json.dumps(rows.ids)
    if rows.after_id is None:
        if rows.ids and rows.first is not None and rows.last is not None:
            # A semi-join on the ids, not `id = ANY(...)`: on a month's partition not yet
            # analyzed the planner walks the timestamp index and compares each row with every
            # id of the list (about a second per 10,000-row batch, bench/bench_tracking.py).
            within = (
                "id IN (SELECT unnest(CAST(%(ids)s AS bigint[]))) "
                "AND timestamp BETWEEN %(first)s AND %(last)s"
            )
            return within, {"ids": ids, "first": rows.first, "last": rows.last}
        return (listed, {"ids": ids}) if rows.ids else (None, None)
    after = "%(after)s" if dialect_name == "postgresql" else ":after"
    if not rows.ids:
        return f"id > {after}", {"after": rows.after_id}
    return f"(id > {after} OR {listed})", {"after": rows.after_id, "ids": ids}


# Each measure of SUMMED over a group of the batch's rows, in that order.
_GROUP_MEASURES = f"""count(*),
    count(CASE WHEN status = '{Status.COMPLETED.value}' THEN 1 END),
    count(CASE WHEN status = '{Status.FAILED.value}' THEN 1 END),
    count(cost_usd), coalesce(sum(cost_usd), 0),
    count(duration_seconds), coalesce(sum(duration_seconds), 0),
    count(input_tokens), coalesce(sum(input_tokens), 0),
    count(output_tokens), coalesce(sum(output_tokens), 0),
    count(cache_read_tokens), coalesce(sum(cache_read_tokens), 0),
    count(cache_creation_tokens), coalesce(sum(cache_creation_tokens), 0)"""


@cache
def _create_batch_sql(dialect_name: str) -> tuple[str, str]:
    timestamp = "timestamptz" if dialect_name == "postgresql" else "TEXT"
    on_commit = " ON COMMIT DELETE ROWS" if dialect_name == "postgresql" else ""
    key = (
        "kind VARCHAR(16), name VARCHAR(200), project_key VARCHAR(200), "
        "model_key VARCHAR(200), status VARCHAR(16)"
    )
    buckets = f"hour {timestamp}, day {timestamp}, month {timestamp}"
    measures = ", ".join(
        f"{name} {'FLOAT' if name in ('cost_sum', 'duration_sum') else 'BIGINT'}" for name in SUMMED
    )
    return (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH} ({key}, timestamp {timestamp}, "
        f"{buckets}, duration_seconds FLOAT, bin INTEGER, cost_usd FLOAT, "
        "input_tokens BIGINT, output_tokens BIGINT, cache_read_tokens BIGINT, "
        f"cache_creation_tokens BIGINT, error_message TEXT){on_commit}",
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_GROUPS} ({buckets}, {key}, {measures}, "
        f"first_seen {timestamp}, last_seen {timestamp}){on_commit}",
    )


@cache
def _stage_sql(kind: Kind, dialect_name: str, where: str) -> str:
    table = USAGE_TABLES[kind].__tablename__
    buckets = ", ".join(bucket_sql(grain, "timestamp", dialect_name) for grain in GRAINS[::-1])
    return (
        f"INSERT INTO {_BATCH} ({_BATCH_COLUMNS}) SELECT '{kind.value}', {NAME_COLUMNS[kind]}, "
        "coalesce(project_id, ''), coalesce(model, ''), status, timestamp, "
        f"{buckets}, duration_seconds, {bin_sql('duration_seconds')}, cost_usd, input_tokens, "
        "output_tokens, cache_read_tokens, cache_creation_tokens, error_message "
        f"FROM {table} WHERE status <> {_RUNNING} AND {where}"
    )


@cache
def fold_statements(
    dialect_name: str,
    tables: tuple[str, ...] = (),
    summed: tuple[str, ...] = SUMMED,
    local_days: bool = True,
) -> tuple[str, ...]:
    """The statements folding the staged rows into the rollup `tables` (default: all), adding
    the `summed` measures (default: all), in the order they must run; with `local_days`, into
    the day grains of `rollup_day_starts` too."""
    tables = tables or ROLLUP_TABLES
    smaller, larger = ("least", "greatest") if dialect_name == "postgresql" else ("min", "max")
    statements = []
    # The finest groups once, then every measure table and grain from those fewer rows.
    finest = MEASURE_TABLES["usage_model_rollup"]
    statements.append(
        f"""INSERT INTO {_GROUPS} (hour, day, month, {finest}, {", ".join(SUMMED)},
    first_seen, last_seen)
SELECT hour, min(day), min(month), {finest}, {_GROUP_MEASURES},
    min(timestamp), max(timestamp)
FROM {_BATCH}
GROUP BY hour, {finest}"""
    )
    sums = ", ".join(f"sum({name})" for name in summed)
    for table, key in MEASURE_TABLES.items():
        if table not in tables:
            continue
        updates = ",\n    ".join(f"{name} = {table}.{name} + excluded.{name}" for name in summed)
        upsert = f"""ON CONFLICT (grain, bucket_start, {key}) DO UPDATE SET
    {updates},
    first_seen = {smaller}({table}.first_seen, excluded.first_seen),
    last_seen = {larger}({table}.last_seen, excluded.last_seen)"""
        insert = f"""INSERT INTO {table} (grain, bucket_start, {key}, {", ".join(summed)},
    first_seen, last_seen)"""
        for grain in GRAINS:
            statements.append(
                f"""{insert}
SELECT '{grain}', {grain}, {key}, {sums}, min(first_seen), max(last_seen)
FROM {_GROUPS} WHERE true
GROUP BY {grain}, {key}
ORDER BY {grain}, {key}
{upsert}"""
            )
        if not local_days:
            continue
        # The other day grains kept (none, unless a time zone was added): an hour lies in one
        # day of each, so the hour's groups add up to them.
        shifted = shifted_day_sql("hour", "starts.start_hour", dialect_name)
        statements.append(
            f"""{insert}
SELECT starts.grain, {shifted}, {key}, {sums}, min(first_seen), max(last_seen)
FROM {_GROUPS} CROSS JOIN {DAY_STARTS_TABLE} AS starts WHERE true
GROUP BY starts.grain, {shifted}, {key}
ORDER BY starts.grain, {shifted}, {key}
{upsert}"""
        )
    for table, key in BIN_TABLES.items():
        if table not in tables:
            continue
        for grain in GRAINS:
            statements.append(
                f"""INSERT INTO {table} (grain, bucket_start, {key}, bin, count)
SELECT '{grain}', {grain}, {key}, bin, count(*)
FROM {_BATCH} WHERE duration_seconds IS NOT NULL
GROUP BY {grain}, {key}, bin
ORDER BY {grain}, {key}, bin
ON CONFLICT (grain, bucket_start, {key}, bin) DO UPDATE SET
    count = {table}.count + excluded.count"""
            )
    for grain in GRAINS if ERROR_TABLE in tables else ():
        statements.append(
            f"""INSERT INTO {ERROR_TABLE} (grain, bucket_start, {_KEY}, message_md5,
    error_message, count)
SELECT '{grain}', {grain}, {_KEY}, md5(error_message), error_message, count(*)
FROM {_BATCH}
WHERE status = '{Status.FAILED.value}' AND error_message IS NOT NULL
GROUP BY {grain}, {_KEY}, error_message
ORDER BY {grain}, {_KEY}, md5(error_message)
ON CONFLICT (grain, bucket_start, {_KEY}, message_md5) DO UPDATE SET
    count = {ERROR_TABLE}.count + excluded.count"""
        )
    statements += [f"DELETE FROM {_BATCH}", f"DELETE FROM {_GROUPS}"]
    return tuple(statements)
