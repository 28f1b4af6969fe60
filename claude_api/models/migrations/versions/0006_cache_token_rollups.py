"""Carry cache tokens through the rollups: `cache_read_count`, `cache_read_sum`,
`cache_creation_count` and `cache_creation_sum` on usage_rollup, usage_model_rollup and
usage_kind_rollup, filled from the finished raw rows still held.

A bucket whose raw rows were purged before this revision keeps counts below its invocations:
its cache tokens are unknown, and answers say how many invocations they cover.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The new measures: (rollup column, raw column, aggregate over that raw column).
_MEASURES = (
    ("cache_read_count", "cache_read_tokens", "count({})"),
    ("cache_read_sum", "cache_read_tokens", "coalesce(sum({}), 0)"),
    ("cache_creation_count", "cache_creation_tokens", "count({})"),
    ("cache_creation_sum", "cache_creation_tokens", "coalesce(sum({}), 0)"),
)
# Each rollup table and the raw-row expressions of its key after (grain, bucket_start, kind).
_KEYS: dict[str, dict[str, str]] = {
    "usage_rollup": {"name": "{name}", "project_key": "coalesce(project_id, '')"},
    "usage_model_rollup": {
        "name": "{name}",
        "project_key": "coalesce(project_id, '')",
        "model_key": "coalesce(model, '')",
        "status": "status",
    },
    "usage_kind_rollup": {},
}
_RAW = {"agent": ("agent_usage", "agent_name"), "skill": ("skill_usage", "skill_name")}
_GRAINS = ("month", "day", "hour")


def _bucket(grain: str, dialect_name: str) -> str:
    # The bucket expression the rollups were filled with (rollups.bucket_sql at this revision).
    if dialect_name == "postgresql":
        return f"date_trunc('{grain}', timestamp, 'UTC')"
    prefix, padding = {
        "hour": (13, ":00:00.000000"),
        "day": (10, " 00:00:00.000000"),
        "month": (7, "-01 00:00:00.000000"),
    }[grain]
    return f"(substr(timestamp, 1, {prefix}) || '{padding}')"


def _backfill_sql(table: str, grain: str, dialect_name: str) -> str:
    """UPDATE `table`'s `grain` rows with the cache token counts and sums of the finished raw
    rows of their bucket and key."""
    key = _KEYS[table]
    selects = []
    for kind, (raw, name_column) in _RAW.items():
        columns = [f"{_bucket(grain, dialect_name)} AS bucket_start", f"'{kind}' AS kind"]
        columns += [
            f"{expression.format(name=name_column)} AS {column}"
            for column, expression in key.items()
        ]
        grouped = len(columns)
        columns += [
            f"{aggregate.format(raw_column)} AS {column}"
            for column, raw_column, aggregate in _MEASURES
        ]
        group_by = ", ".join(str(position) for position in range(1, grouped + 1) if position != 2)
        selects.append(
            f"SELECT {', '.join(columns)} FROM {raw} WHERE status <> 'running' GROUP BY {group_by}"
        )
    assignments = ", ".join(f"{column} = raw.{column}" for column, _, _ in _MEASURES)
    matches = " AND ".join(
        f"{table}.{column} = raw.{column}" for column in ("bucket_start", "kind", *key)
    )
    return (
        f"UPDATE {table} SET {assignments} FROM ({' UNION ALL '.join(selects)}) AS raw "
        f"WHERE {table}.grain = '{grain}' AND {matches}"
    )


def upgrade() -> None:
    for table in _KEYS:
        for column, _, _ in _MEASURES:
            # The default fills the rows already there; the backfill then sets what is known.
            op.add_column(
                table,
                sa.Column(column, sa.BigInteger(), nullable=False, server_default="0"),
            )
    dialect_name = op.get_bind().dialect.name
    for table in _KEYS:
        for grain in _GRAINS:
            op.execute(_backfill_sql(table, grain, dialect_name))


def downgrade() -> None:
    for table in _KEYS:
        with op.batch_alter_table(table) as batch:
            for column, _, _ in _MEASURES:
                batch.drop_column(column)
