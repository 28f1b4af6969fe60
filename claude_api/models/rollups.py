"""Keeping the rollups equal to the raw rows, inside the writer's transaction.

Triggers on `agent_usage` and `skill_usage` copy every row that becomes finished (inserted
finished, or a running row completed) into `usage_pending`: the database itself decides which
rows changed, so duplicates and replays add nothing. `fold` then adds the pending rows to the
hour, day and month rollups (with and without the model), duration bins and error counts
with additive upserts, and empties
`usage_pending`, before the writer commits. Rollup rows are upserted in key order, so concurrent
PostgreSQL writers lock them in one global order and cannot deadlock.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import Connection

from claude_api.models.events import Kind, Status
from claude_api.models.sketch import bin_sql
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES

GRAINS = ("month", "day", "hour")  # coarsest first

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
}
_PENDING_COLUMNS = (
    "kind, name, project_key, model_key, status, timestamp, duration_seconds, cost_usd, "
    "input_tokens, output_tokens, error_message"
)
_RUNNING = f"'{Status.RUNNING.value}'"


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


def fold(connection: Connection) -> None:
    """Fold the pending finished rows into the rollups and empty `usage_pending`."""
    for statement in fold_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)


@cache
def fold_statements(dialect_name: str) -> tuple[str, ...]:
    """The statements of `fold`, in the order they must run."""
    smaller, larger = ("least", "greatest") if dialect_name == "postgresql" else ("min", "max")
    statements = []
    for table, key in MEASURE_TABLES.items():
        for grain in GRAINS:
            bucket = bucket_sql(grain, "timestamp", dialect_name)
            statements.append(
                f"""INSERT INTO {table} (grain, bucket_start, {key}, invocations, completed,
    failed, cost_count, cost_sum, duration_count, duration_sum, input_count, input_sum,
    output_count, output_sum, first_seen, last_seen)
SELECT '{grain}', {bucket}, {key}, count(*),
    count(CASE WHEN status = '{Status.COMPLETED.value}' THEN 1 END),
    count(CASE WHEN status = '{Status.FAILED.value}' THEN 1 END),
    count(cost_usd), coalesce(sum(cost_usd), 0),
    count(duration_seconds), coalesce(sum(duration_seconds), 0),
    count(input_tokens), coalesce(sum(input_tokens), 0),
    count(output_tokens), coalesce(sum(output_tokens), 0),
    min(timestamp), max(timestamp)
FROM usage_pending WHERE true
GROUP BY {bucket}, {key}
ORDER BY {bucket}, {key}
ON CONFLICT (grain, bucket_start, {key}) DO UPDATE SET
    invocations = {table}.invocations + excluded.invocations,
    completed = {table}.completed + excluded.completed,
    failed = {table}.failed + excluded.failed,
    cost_count = {table}.cost_count + excluded.cost_count,
    cost_sum = {table}.cost_sum + excluded.cost_sum,
    duration_count = {table}.duration_count + excluded.duration_count,
    duration_sum = {table}.duration_sum + excluded.duration_sum,
    input_count = {table}.input_count + excluded.input_count,
    input_sum = {table}.input_sum + excluded.input_sum,
    output_count = {table}.output_count + excluded.output_count,
    output_sum = {table}.output_sum + excluded.output_sum,
    first_seen = {smaller}({table}.first_seen, excluded.first_seen),
    last_seen = {larger}({table}.last_seen, excluded.last_seen)"""
            )
    bin = bin_sql("duration_seconds")
    for table, key in BIN_TABLES.items():
        for grain in GRAINS:
            bucket = bucket_sql(grain, "timestamp", dialect_name)
            statements.append(
                f"""INSERT INTO {table} (grain, bucket_start, {key}, bin, count)
SELECT '{grain}', {bucket}, {key}, {bin}, count(*)
FROM usage_pending WHERE duration_seconds IS NOT NULL
GROUP BY {bucket}, {key}, {bin}
ORDER BY {bucket}, {key}, {bin}
ON CONFLICT (grain, bucket_start, {key}, bin) DO UPDATE SET
    count = {table}.count + excluded.count"""
            )
    for grain in GRAINS:
        bucket = bucket_sql(grain, "timestamp", dialect_name)
        statements.append(
            f"""INSERT INTO usage_error_rollup (grain, bucket_start, {_KEY}, message_md5,
    error_message, count)
SELECT '{grain}', {bucket}, {_KEY}, md5(error_message), error_message, count(*)
FROM usage_pending
WHERE status = '{Status.FAILED.value}' AND error_message IS NOT NULL
GROUP BY {bucket}, {_KEY}, error_message
ORDER BY {bucket}, {_KEY}, md5(error_message)
ON CONFLICT (grain, bucket_start, {_KEY}, message_md5) DO UPDATE SET
    count = usage_error_rollup.count + excluded.count"""
        )
    statements.append("DELETE FROM usage_pending")
    return tuple(statements)


def trigger_ddl(dialect_name: str) -> list[str]:
    """The statements creating the triggers that feed `usage_pending`, on both usage tables."""
    statements = []
    for kind in Kind:
        table = USAGE_TABLES[kind].__tablename__
        values = (
            f"'{kind.value}', NEW.{NAME_COLUMNS[kind]}, coalesce(NEW.project_id, ''), "
            "coalesce(NEW.model, ''), NEW.status, NEW.timestamp, NEW.duration_seconds, "
            "NEW.cost_usd, NEW.input_tokens, NEW.output_tokens, NEW.error_message"
        )
        insert = f"INSERT INTO usage_pending ({_PENDING_COLUMNS}) VALUES ({values});"
        finished = f"NEW.status <> {_RUNNING}"
        completed = f"OLD.status = {_RUNNING} AND NEW.status <> {_RUNNING}"
        if dialect_name == "postgresql":
            function = f"{table}_to_pending"
            statements += [
                f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n    {insert}\n    RETURN NULL;\nEND\n$$",
                f"CREATE TRIGGER {table}_finished_insert AFTER INSERT ON {table} "
                f"FOR EACH ROW WHEN ({finished}) EXECUTE FUNCTION {function}()",
                f"CREATE TRIGGER {table}_finished_update AFTER UPDATE OF status ON {table} "
                f"FOR EACH ROW WHEN ({completed}) EXECUTE FUNCTION {function}()",
            ]
        else:
            statements += [
                f"CREATE TRIGGER {table}_finished_insert AFTER INSERT ON {table} "
                f"WHEN {finished} BEGIN {insert} END",
                f"CREATE TRIGGER {table}_finished_update AFTER UPDATE OF status ON {table} "
                f"WHEN {completed} BEGIN {insert} END",
            ]
    return statements


def drop_trigger_ddl(dialect_name: str) -> list[str]:
    """The statements undoing `trigger_ddl`."""
    statements = []
    for kind in Kind:
        table = USAGE_TABLES[kind].__tablename__
        for suffix in ("finished_insert", "finished_update"):
            on = f" ON {table}" if dialect_name == "postgresql" else ""
            statements.append(f"DROP TRIGGER IF EXISTS {table}_{suffix}{on}")
        if dialect_name == "postgresql":
            statements.append(f"DROP FUNCTION IF EXISTS {table}_to_pending()")
    return statements


def backfill_sql() -> list[str]:
    """Statements queueing every finished raw row for folding (for a database that had rows
    before the rollups existed)."""
    statements = []
    for kind in Kind:
        table = USAGE_TABLES[kind].__tablename__
        statements.append(
            f"INSERT INTO usage_pending ({_PENDING_COLUMNS}) SELECT '{kind.value}', "
            f"{NAME_COLUMNS[kind]}, coalesce(project_id, ''), coalesce(model, ''), status, "
            "timestamp, duration_seconds, cost_usd, input_tokens, output_tokens, error_message "
            f"FROM {table} WHERE status <> {_RUNNING}"
        )
    return statements
