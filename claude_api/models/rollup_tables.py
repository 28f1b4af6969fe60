"""The rollup tables: finished invocations pre-aggregated per UTC hour, day and month.

A rollup row holds the additive measures of every finished invocation of one (kind, name,
project, model, status) that started in its bucket; `usage_duration_bins` holds the durations of
the same invocations as DDSketch bins, `usage_error_rollup` their failure messages. Running
invocations are not rolled up (they are few, and still change): queries read them from the raw
rows. An invocation enters the rollups once, when its row becomes finished, and never leaves:
purging raw rows keeps them, so reports over purged periods still answer.

The raw tables' triggers copy each newly finished row into `usage_pending`; the write path folds
the pending rows into the rollups and empties it in the same transaction (`rollups.fold`).

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
    """The key columns every rollup table starts with (not a table)."""

    grain: str = Field(sa_type=sa.String(8), primary_key=True)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)
    name: str = Field(sa_type=NAME, primary_key=True)
    project_key: str = Field(sa_type=NAME, primary_key=True)
    model_key: str = Field(sa_type=NAME, primary_key=True)


class UsageRollup(RollupKey, table=True):
    """Sums and counts of the finished invocations of one key and status in one bucket."""

    __tablename__ = "usage_rollup"

    status: str = Field(sa_type=sa.String(16), primary_key=True)
    invocations: int = Field(sa_type=sa.BigInteger)
    cost_count: int = Field(sa_type=sa.BigInteger)
    cost_sum: float = Field(sa_type=sa.Float)
    duration_count: int = Field(sa_type=sa.BigInteger)
    duration_sum: float = Field(sa_type=sa.Float)
    input_count: int = Field(sa_type=sa.BigInteger)
    input_sum: int = Field(sa_type=sa.BigInteger)
    output_count: int = Field(sa_type=sa.BigInteger)
    output_sum: int = Field(sa_type=sa.BigInteger)
    first_seen: datetime = Field(sa_type=UTCDateTime)
    last_seen: datetime = Field(sa_type=UTCDateTime)


class DurationBin(RollupKey, table=True):
    """How many finished invocations of one key and status in one bucket took a duration in
    DDSketch bin `bin` (see `claude_api.models.sketch`)."""

    __tablename__ = "usage_duration_bins"

    status: str = Field(sa_type=sa.String(16), primary_key=True)
    bin: int = Field(sa_type=sa.Integer, primary_key=True)
    count: int = Field(sa_type=sa.BigInteger)


class ErrorRollup(SQLModel, table=True):
    """How many failed invocations of one key in one bucket reported `error_message`.

    Keyed by an id, not by the message: a message may be far longer than an index entry may be
    on PostgreSQL; the migration adds the unique index each database can hold.
    """

    __tablename__ = "usage_error_rollup"

    id: int | None = Field(default=None, primary_key=True)
    grain: str = Field(sa_type=sa.String(8))
    bucket_start: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(sa_type=sa.String(16))
    name: str = Field(sa_type=NAME)
    project_key: str = Field(sa_type=NAME)
    model_key: str = Field(sa_type=NAME)
    error_message: str = Field(sa_type=sa.Text)
    count: int = Field(sa_type=sa.BigInteger)


class PendingRollup(SQLModel, table=True):
    """A finished invocation waiting to be folded into the rollups; empty between transactions."""

    __tablename__ = "usage_pending"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=sa.String(16))
    name: str = Field(sa_type=NAME)
    project_key: str = Field(sa_type=NAME)
    model_key: str = Field(sa_type=NAME)
    status: str = Field(sa_type=sa.String(16))
    timestamp: datetime = Field(sa_type=UTCDateTime)
    duration_seconds: float | None = Field(default=None, sa_type=sa.Float)
    cost_usd: float | None = Field(default=None, sa_type=sa.Float)
    input_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    output_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    error_message: str | None = Field(default=None, sa_type=sa.Text)


class RetentionState(SQLModel, table=True):
    """What purging has removed so far: raw rows, and rollup buckets, before these instants."""

    __tablename__ = "retention_state"

    id: int = Field(default=1, primary_key=True)
    raw_purged_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rollups_purged_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
