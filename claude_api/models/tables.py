"""The usage tables: `agent_usage` and `skill_usage`, one row per invocation (per event id).

Cost and tokens on a row are the invocation's own, exclusive of its children, so summing rows
never counts anything twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from claude_api.events import MAX_NAME_LENGTH, Kind
from claude_api.models.types import UTCDateTime

NAME = sa.String(MAX_NAME_LENGTH)


class UsageColumns(SQLModel):
    """Columns both tables share (not a table)."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: uuid.UUID = Field(sa_type=sa.Uuid, unique=True, index=True, nullable=False)
    task_id: str = Field(sa_type=NAME, index=True)
    parent_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid, index=True)
    project_id: str | None = Field(default=None, sa_type=NAME, index=True)
    timestamp: datetime = Field(sa_type=UTCDateTime, index=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(sa_type=sa.String(16))
    duration_seconds: float | None = Field(default=None, sa_type=sa.Float)
    cost_usd: float | None = Field(default=None, sa_type=sa.Float)
    cost_source: str | None = Field(default=None, sa_type=sa.String(16))
    input_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    output_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    cache_read_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    cache_creation_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    model: str | None = Field(default=None, sa_type=NAME)
    error_message: str | None = Field(default=None, sa_type=sa.Text)
    source: str = Field(sa_type=sa.String(64))


def _running_index(table: str) -> sa.Index:
    # Queries read running rows over whole ranges (the rollups hold finished ones only).
    where = sa.text("status = 'running'")
    return sa.Index(f"ix_{table}_running", "timestamp", sqlite_where=where, postgresql_where=where)


class AgentUsage(UsageColumns, table=True):
    """One invocation of an agent: a task's main loop or a subagent it spawned."""

    __tablename__ = "agent_usage"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name="ck_agent_usage_status"
        ),
        _running_index("agent_usage"),
    )

    agent_name: str = Field(sa_type=NAME, index=True)


class SkillUsage(UsageColumns, table=True):
    """One invocation of a skill, inside the agent invocation given by `parent_id`."""

    __tablename__ = "skill_usage"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name="ck_skill_usage_status"
        ),
        _running_index("skill_usage"),
    )

    skill_name: str = Field(sa_type=NAME, index=True)


USAGE_TABLES: dict[Kind, type[AgentUsage] | type[SkillUsage]] = {
    Kind.AGENT: AgentUsage,
    Kind.SKILL: SkillUsage,
}
NAME_COLUMNS: dict[Kind, str] = {Kind.AGENT: "agent_name", Kind.SKILL: "skill_name"}


class ImportFile(SQLModel, table=True):
    """How far the transcript importer has read one file, and what it must remember to go on.

    `size`, `mtime_ns` and `inode` tell an unchanged file (skipped without opening it) from a
    grown one (read from `offset`) and from a replaced one (read again from the start). `state`
    is the importer's JSON: the file's spend not yet attributed, its open invocations and, on a
    session's main transcript, the session's own progress.
    """

    __tablename__ = "import_files"

    id: int | None = Field(default=None, primary_key=True)
    path: str = Field(sa_type=sa.Text, unique=True, index=True)
    session_id: str = Field(sa_type=NAME, index=True)
    agent_id: str | None = Field(default=None, sa_type=NAME)
    size: int = Field(sa_type=sa.BigInteger)
    mtime_ns: int = Field(sa_type=sa.BigInteger)
    inode: int = Field(sa_type=sa.BigInteger)
    offset: int = Field(sa_type=sa.BigInteger)
    lines: int = Field(sa_type=sa.BigInteger)
    state: str = Field(sa_type=sa.Text)
    imported_at: datetime = Field(sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    """An API key: its public id, the SHA-256 of the whole key (never the key), its scope and
    the project it is bound to (None: every project). Revoked keys stay, for the record."""

    __tablename__ = "api_key"
    __table_args__ = (
        sa.CheckConstraint("scope IN ('read', 'write', 'admin')", name="ck_api_key_scope"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(sa_type=sa.String(32), unique=True, index=True)
    secret_hash: str = Field(sa_type=sa.String(64))
    name: str | None = Field(default=None, sa_type=NAME)
    scope: str = Field(sa_type=sa.String(16))
    project_id: str | None = Field(default=None, sa_type=NAME)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TaskSession(SQLModel, table=True):
    """A Claude Code session the executor ran as a task (task id = session id), with the
    project and agent it records it under, so that the transcript import and the hook record
    the same session under the same names."""

    __tablename__ = "task_sessions"

    session_id: str = Field(sa_type=NAME, primary_key=True)
    project_id: str | None = Field(default=None, sa_type=NAME)
    agent_name: str = Field(sa_type=NAME)
    started_at: datetime = Field(sa_type=UTCDateTime)
