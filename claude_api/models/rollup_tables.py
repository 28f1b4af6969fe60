"""The rollup tables: finished invocations pre-aggregated per UTC hour, day and month.

A rollup row holds the counts and sums of every finished invocation of one (kind, name,
project) that started in its bucket; `usage_model_rollup` the same per model and status too,
`usage_name_rollup` per (kind, name) over every project, `usage_kind_rollup` per kind only.
Their durations are kept as DDSketch bins per (kind, name, project) in `usage_duration_bins`,
per (kind, name) in `usage_name_duration_bins` and per kind in `usage_kind_duration_bins`;
`usage_error_rollup` counts their failure messages per (kind, name, project). Running
invocations are not rolled up (they are few, and still change): queries read them from the raw
rows. An invocation enters the rollups once, when its row becomes finished, and never leaves:
purging raw rows keeps them, so reports over purged periods still answer.

The write path adds the rows it made finished to the rollups in the same transaction
(`rollups.fold`).

`project_key` and `model_key` hold '' for "none" (a NULL would not match in the primary key);
names, projects and models are never empty.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from claude_api.models.tables import NAME
from claude_api.models.types import UTCDateTime


class RollupKey(SQLModel):
    """The key columns the rollup tables start with (not a table)."""

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)
    name: str = Field(sa_type=NAME, primary_key=True)
    project_key: str = Field(sa_type=NAME, primary_key=True)


class RollupMeasures(SQLModel):
    """Counts and sums of the finished invocations of one key in one bucket (not a table)."""

    invocations: int = Field(sa_type=sa.BigInteger)
    completed: int = Field(sa_type=sa.BigInteger)
    failed: int = Field(sa_type=sa.BigInteger)
    cost_count: int = Field(sa_type=sa.BigInteger)
    cost_sum: float = Field(sa_type=sa.Float)
    duration_count: int = Field(sa_type=sa.BigInteger)
    duration_sum: float = Field(sa_type=sa.Float)
    input_count: int = Field(sa_type=sa.BigInteger)
    input_sum: int = Field(sa_type=sa.BigInteger)
    output_count: int = Field(sa_type=sa.BigInteger)
    output_sum: int = Field(sa_type=sa.BigInteger)
    # Added by a later migration, whose default filled the rows already there.
    cache_read_count: int = Field(sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})
    cache_read_sum: int = Field(sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})
    cache_creation_count: int = Field(
        sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    cache_creation_sum: int = Field(sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})
    first_seen: datetime = Field(sa_type=UTCDateTime)
    last_seen: datetime = Field(sa_type=UTCDateTime)


class UsageRollup(RollupKey, RollupMeasures, table=True):
    """Finished invocations per (kind, name, project) and bucket."""

    __tablename__ = "usage_rollup"
    __table_args__ = (
        sa.Index("ix_usage_rollup_name", "name", "grain", "bucket_start"),
        {"sqlite_with_rowid": False},
    )


class ModelRollup(RollupKey, RollupMeasures, table=True):
    """Finished invocations per (kind, name, project, model, status) and bucket: read only
    when a query names a model or a status, having several times the rows."""

    __tablename__ = "usage_model_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    model_key: str = Field(sa_type=NAME, primary_key=True)
    status: str = Field(sa_type=sa.String(16), primary_key=True)


class KindRollup(RollupMeasures, table=True):
    """Finished invocations per kind and bucket, every name and project together: read when a
    query names neither, so totals and histories of everything cost one row per bucket."""

    __tablename__ = "usage_kind_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)


class NameRollup(RollupMeasures, table=True):
    """Finished invocations per (kind, name) and bucket, every project together: read when a
    query tells names apart but no project, a name's bucket being one row instead of one per
    project. Keyed by time first, like the others: every question reads a range of buckets
    (with the name first, a range's edge hours would read every hour of every name)."""

    __tablename__ = "usage_name_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)
    name: str = Field(sa_type=NAME, primary_key=True)


class DurationBin(SQLModel, table=True):
    """How many finished invocations of one (kind, name, project) in one bucket took a duration
    in DDSketch bin `bin` (see `claude_api.models.sketch`); read for one project's questions,
    so keyed by project first."""

    __tablename__ = "usage_duration_bins"
    __table_args__ = {"sqlite_with_rowid": False}

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    project_key: str = Field(sa_type=NAME, primary_key=True)
    name: str = Field(sa_type=NAME, primary_key=True)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)
    bin: int = Field(sa_type=sa.Integer, primary_key=True)
    count: int = Field(sa_type=sa.BigInteger)


class KindDurationBin(SQLModel, table=True):
    """The same bins per kind only, for percentiles over every name and project at once."""

    __tablename__ = "usage_kind_duration_bins"
    __table_args__ = {"sqlite_with_rowid": False}

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)
    bin: int = Field(sa_type=sa.Integer, primary_key=True)
    count: int = Field(sa_type=sa.BigInteger)


class NameDurationBin(SQLModel, table=True):
    """The same bins per (kind, name), for percentiles of names across every project."""

    __tablename__ = "usage_name_duration_bins"
    __table_args__ = {"sqlite_with_rowid": False}

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    name: str = Field(sa_type=NAME, primary_key=True)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)
    bin: int = Field(sa_type=sa.Integer, primary_key=True)
    count: int = Field(sa_type=sa.BigInteger)


class ErrorRollup(RollupKey, table=True):
    """How many failed invocations of one (kind, name, project) in one bucket reported
    `error_message`, keyed by the message's MD5 (an index entry cannot hold a long text on
    PostgreSQL; SQLite connections get an `md5` function from `make_engine`)."""

    __tablename__ = "usage_error_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    message_md5: str = Field(sa_type=sa.String(32), primary_key=True)
    error_message: str = Field(sa_type=sa.Text)
    count: int = Field(sa_type=sa.BigInteger)


class RetentionState(SQLModel, table=True):
    """What purging has removed so far: raw rows, and rollup buckets, before these instants."""

    __tablename__ = "retention_state"

    id: int = Field(default=1, primary_key=True)
    raw_purged_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rollups_purged_before: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DataVersion(SQLModel, table=True):
    """Tokens of the usage data's state, each replaced by a new random value: row 1 by every
    transaction that changes raw rows or rollups, row 2 (the settled token) by those that
    reach an invocation that started more than a day ago (`claude_api.models.data_version`)."""

    __tablename__ = "data_version"

    id: int = Field(default=1, primary_key=True)
    token: int = Field(sa_type=sa.BigInteger)


class RollupDayStart(SQLModel, table=True):
    """A day grain the measure rollups keep besides UTC days: days that start at `start_hour`
    UTC (the grain `dayHH`, `claude_api.buckets.day_grain`), the days of a time zone the
    dashboard and reports are read in (`claude_api.models.local_days`). Every write folds its
    rows into each grain listed here, in the same transaction."""

    __tablename__ = "rollup_day_starts"

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    start_hour: int = Field(sa_type=sa.Integer)
