"""The one write path: usage events into `agent_usage` / `skill_usage`, idempotent on event id.

Rules, applied atomically by the database so that concurrent writers agree:
- an event merges into (or is compared with) the row of its id only when its kind, name, task
  and project are the row's; otherwise its whole batch is refused (`EventConflict`) and
  nothing of it is written, so no writer can take over another project's invocation;
- a start inserts a `running` row; a later `running` event of the same id carries the spend so
  far and raises the running row's cost, tokens and duration to the larger of the two values
  (so progress events arriving late or from racing producers never lower them), its model to
  the latest known; it never changes the row's status or a finished row;
- a finish completes the `running` row of its id (its values win; those it leaves empty keep
  the row's), inserts the whole row when there is none, and does nothing when the row is
  already finished (a finish never counts twice, and an exact replay is harmless).

A row keeps the start time its id was first written with: on PostgreSQL, whose usage tables
are partitioned by month of start time, a later event of the id that says another start time
still lands on that row (see `_upsert_copied`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from claude_api.errors import ConflictingEvent, EventConflict
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models import data_version, rollups
from claude_api.models.rollup_tables import RetentionState
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES

logger = logging.getLogger(__name__)

# Columns a finish may fill in on its running row; a finish's empty field keeps the start's value.
_FINISH_COLUMNS = (
    "status", "finished_at", "duration_seconds", "cost_usd", "cost_source", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_creation_tokens", "model", "error_message",
    "project_id", "parent_id",
)  # fmt: skip
# The spend so far, which a running event raises on its running row and never lowers.
_GROWING = (
    "duration_seconds", "cost_usd", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_creation_tokens",
)  # fmt: skip
# What an event must share with the row of its id to merge into it (the kind is the table).
_IDENTITY = ("kind", "name", "task_id", "project_id")


def event_row(event: UsageEvent) -> dict[str, Any]:
    """The table row for an event (the name lands in `agent_name` or `skill_name`)."""
    row = dict(event.__dict__)  # the validated field values, without model_dump's copying
    del row["kind"]
    row[NAME_COLUMNS[event.kind]] = row.pop("name")
    return row


def collapse(
    events: Iterable[UsageEvent],
) -> tuple[dict[UUID, UsageEvent], dict[UUID, tuple[str, ...]]]:
    """One event per id, merged by the rules above as if written one at a time in order, and
    the ids whose events differ in kind, name, task or project, with the fields that differ."""
    latest: dict[UUID, UsageEvent] = {}
    first: dict[UUID, UsageEvent] = {}
    differing: dict[UUID, tuple[str, ...]] = {}
    for event in events:
        seen = latest.get(event.event_id)
        if seen is None:
            latest[event.event_id] = first[event.event_id] = event
            continue
        fields = _differing(first[event.event_id], event)
        if fields:
            differing.setdefault(event.event_id, fields)
        elif not seen.is_finish:
            latest[event.event_id] = _merged(seen, event)
    return latest, differing


def _differing(event: UsageEvent, other: UsageEvent) -> tuple[str, ...]:
    """The identity fields in which two events of one id differ (the kind alone when it does:
    names of different kinds are not comparable)."""
    if event.kind is not other.kind:
        return ("kind",)
    return tuple(name for name in _IDENTITY if getattr(event, name) != getattr(other, name))


def _merged(running: UsageEvent, event: UsageEvent) -> UsageEvent:
    """`event` merged into the running invocation `running`, as the upsert merges it."""
    changes: dict[str, Any] = {}
    if event.is_finish:
        # What the finish leaves empty keeps the batch's spend so far. One case differs from
        # writing one at a time: a stored running row with more spend than a stale progress
        # event of the same batch, then a finish without that value, keeps the batch's value.
        changes = {
            name: value for name in _FINISH_COLUMNS if (value := getattr(event, name)) is not None
        }
    else:
        for name in _GROWING:
            mine, theirs = getattr(running, name), getattr(event, name)
            if theirs is not None and (mine is None or theirs > mine):
                changes[name] = theirs
        if event.model is not None:
            changes["model"] = event.model
    changes["cost_source"] = _cost_source(running, event)
    return running.model_copy(update=changes)


def _cost_source(running: UsageEvent, event: UsageEvent) -> Any:
    """The source of the cost the merge keeps (the SQL twin is in `_merge_rule`)."""
    if event.cost_usd is not None and (
        event.is_finish or running.cost_usd is None or event.cost_usd > running.cost_usd
    ):
        return event.cost_source
    if running.cost_usd is not None:
        return running.cost_source
    return event.cost_source or running.cost_source


def _conflict(
    events: Sequence[UsageEvent], differing: dict[UUID, tuple[str, ...]], *, within_batch: bool
) -> EventConflict:
    positions: dict[UUID, list[int]] = {event_id: [] for event_id in differing}
    for position, event in enumerate(events):
        if event.event_id in positions:
            positions[event.event_id].append(position)
    return EventConflict(
        [
            ConflictingEvent(event_id, fields, tuple(positions[event_id]), within_batch)
            for event_id, fields in sorted(
                differing.items(), key=lambda item: min(positions[item[0]])
            )
        ]
    )


def store_events(session: Session, events: Sequence[UsageEvent]) -> None:
    """Write `events` in the session's transaction; the caller commits.

    Within one batch the rules apply as if the events had been written one at a time in order.
    Raises EventConflict, having written nothing the caller may commit, when an event's id
    names an invocation of another kind, name, task or project. Events that started before
    the purge horizon (`retention_state.raw_purged_before`) are left out and logged: their
    rows may have been purged after reaching the rollups, and a replay would count them twice.
    """
    connection = session.connection()
    dialect_name = connection.dialect.name
    collapsed, differing = collapse(_after_purge_horizon(connection, events))
    if differing:
        raise _conflict(events, differing, within_batch=True)
    # In event id order, so concurrent writers take their locks in one global order and cannot
    # deadlock on PostgreSQL (the ids' locks in the registry, then the rows'; SQLite writers
    # take turns); sorted as integers, which compare in C.
    ordered = [collapsed[event_id] for event_id in sorted(collapsed, key=_as_int)]
    by_kind = {kind: mine for kind in Kind if (mine := [e for e in ordered if e.kind is kind])}
    rows = {
        kind: [_driver_row(event, dialect_name) for event in mine] for kind, mine in by_kind.items()
    }
    if dialect_name == "postgresql":
        written = _upsert_copied(connection, rows) if rows else {}
    else:
        written = {kind: _upsert(connection, kind, mine) for kind, mine in rows.items()}
    changed: dict[Kind, rollups.ChangedRows] = {}
    for kind, (changed_rows, stored, crossed) in written.items():
        changed[kind] = changed_rows
        differing.update(_mismatches(by_kind[kind], stored))
        differing.update((event_id, ("kind",)) for event_id in crossed)
    if differing:
        # The caller's transaction is not committed: nothing of the batch stays.
        raise _conflict(events, differing, within_batch=False)
    rollups_from = rollups.fold(connection, changed)
    if ordered:
        data_version.changed(connection, earliest_start=_earliest(rollups_from, ordered))


def _earliest(rollups_from: datetime | None, events: Sequence[UsageEvent]) -> datetime | None:
    """The earliest start of an invocation the batch changed: in the rollups (`rollups_from`,
    from the fold) or among the running rows it wrote, which answers read from the raw rows."""
    starts = [event.timestamp for event in events if event.status is Status.RUNNING]
    if rollups_from is not None:
        starts.append(rollups_from)
    return min(starts, default=None)


# A stored row of one of the batch's ids: event id, name, task id, project id.
_StoredRow = tuple[UUID, str, str, str | None]
# What an upsert of one kind tells: the rows it made finished, the stored rows of its ids it
# left alone, and its ids that the other kind holds.
_Written = tuple[rollups.ChangedRows, list[_StoredRow], list[UUID]]


def _mismatches(events: list[UsageEvent], stored: list[_StoredRow]) -> dict[UUID, tuple[str, ...]]:
    """The events whose stored row of the same id is of another identity, with what differs."""
    if not stored:
        return {}
    by_id = {event.event_id: event for event in events}
    differing: dict[UUID, tuple[str, ...]] = {}
    for event_id, name, task_id, project_id in stored:
        event = by_id[event_id]
        fields = tuple(
            field
            for field, value in (("name", name), ("task_id", task_id), ("project_id", project_id))
            if getattr(event, field) != value
        )
        if fields:
            differing[event_id] = fields
    return differing


def _upsert(connection: Connection, kind: Kind, rows: list[dict[str, Any]]) -> _Written:
    """SQLite: run the upsert of `rows`; tell which rows it made finished, the stored rows of
    its ids that may belong to other invocations (to compare with the events), and its ids
    that rows of the other kind hold.

    The upsert merges only into rows of the same name, task and project (`_merge_rule`), so
    no check can come too late: when it left rows alone (replays, or other invocations'),
    those are read back in the same transaction.
    The statement is compiled once and run through the driver by executemany: SQLAlchemy's
    per-row parameter processing would cost more than the database's own work
    (bench/bench_tracking.py). PostgreSQL takes the rows by COPY (`_upsert_copied`).
    """
    statement = _sqlite_statement_sql(kind)
    # SQLite writers take turns (BEGIN IMMEDIATE): the rows inserted now are those after the
    # current last id, and the running rows completed now are those the finishes name.
    table = USAGE_TABLES[kind].__tablename__
    after = connection.exec_driver_sql(f"SELECT max(id) FROM {table}").scalar() or 0
    finishes = [row["event_id"] for row in rows if row["status"] != Status.RUNNING.value]
    completed: list[int] = []
    if finishes and connection.exec_driver_sql(_ANY_RUNNING_SQL.format(table=table)).first():
        found = connection.exec_driver_sql(
            _RUNNING_AMONG_SQL.format(table=table), (json.dumps(finishes),)
        )
        completed = [row[0] for row in found]
    written = connection.exec_driver_sql(statement, rows).rowcount
    stored: list[_StoredRow] = []
    if written < len(rows):  # some rows were left alone: replays, or other invocations'
        ids = json.dumps([row["event_id"] for row in rows])
        found = connection.exec_driver_sql(_sqlite_stored_sql(kind), (after, ids))
        stored = [(UUID(hex=row[0]), row[1], row[2], row[3]) for row in found]
    found = connection.exec_driver_sql(_sqlite_crossed_sql(kind), (after,))
    crossed = [UUID(hex=row[0]) for row in found]
    return rollups.ChangedRows(after_id=after, ids=completed), stored, crossed


def _upsert_copied(
    connection: Connection, rows: dict[Kind, list[dict[str, Any]]]
) -> dict[Kind, _Written]:
    """PostgreSQL: the upsert of each kind's `rows` (what `_upsert` tells, per kind). One
    set-based statement per step costs the server a fraction of one execution per row:

    1. COPY each kind's rows into a temporary table;
    2. claim their event ids in `invocation_ids` (claude_api.models.partitions), all kinds in
       one statement, in event id order: new ids are registered with their start time and
       kind, and every registered id is locked until the transaction ends, so that writers of
       one id take turns and, taking the locks in one global order, cannot deadlock;
    3. when some ids were registered before, move their rows to the registered start time (the
       partition of the stored row; a later event of an invocation may say it started in
       another month) and learn which of them the other kind holds;
    4. upsert into the partitioned table on (event id, timestamp), returning the ids, statuses
       and start times of the rows written, and read back the stored rows it left alone.
    """
    driver = connection.dialect.loaded_dbapi
    claim = _claim_sql(tuple(rows))
    written: dict[Kind, _Written] = {}
    try:
        with connection.connection.driver_connection.cursor() as cursor:
            for kind, mine in rows.items():
                statements = _copied_sql(kind)
                columns = _COLUMNS[kind]
                cursor.execute(statements.create)
                with cursor.copy(statements.copy) as writer:
                    for row in mine:
                        writer.write_row([row[name] for name in columns])
            claimed = cursor.execute(claim).rowcount
            registered_before = claimed < sum(len(mine) for mine in rows.values())
            for kind, mine in rows.items():
                statements = _copied_sql(kind)
                crossed: list[UUID] = []
                if registered_before:
                    crossed = [row[0] for row in cursor.execute(statements.adopt)]
                upserted = cursor.execute(statements.upsert).fetchall()
                stored: list[_StoredRow] = []
                if len(upserted) < len(mine):  # rows left alone: replays, or others'
                    stored = cursor.execute(statements.stored).fetchall()
                cursor.execute(statements.clear)
                finished = [row for row in upserted if row[1] != Status.RUNNING.value]
                changed = rollups.ChangedRows(ids=[row[0] for row in finished])
                if finished:
                    changed.first = min(row[2] for row in finished)
                    changed.last = max(row[2] for row in finished)
                written[kind] = changed, stored, crossed
    except driver.Error as error:  # raised as SQLAlchemy raises the driver's errors
        raise sa.exc.DBAPIError.instance(claim, None, error, driver.Error) from error
    return written


_ANY_RUNNING_SQL = f"SELECT 1 FROM {{table}} WHERE status = '{Status.RUNNING.value}' LIMIT 1"
_RUNNING_AMONG_SQL = (
    f"SELECT id FROM {{table}} WHERE status = '{Status.RUNNING.value}' "
    "AND event_id IN (SELECT value FROM json_each(?))"
)


def _other(kind: Kind) -> str:
    return USAGE_TABLES[Kind.SKILL if kind is Kind.AGENT else Kind.AGENT].__tablename__


@cache
def _sqlite_stored_sql(kind: Kind) -> str:
    """The rows that were there before the batch (ids up to `after`) with the batch's ids."""
    table = USAGE_TABLES[kind].__tablename__
    return (
        f"SELECT event_id, {NAME_COLUMNS[kind]}, task_id, project_id FROM {table} "
        "WHERE id <= ? AND event_id IN (SELECT value FROM json_each(?))"
    )


@cache
def _sqlite_crossed_sql(kind: Kind) -> str:
    """The ids of the rows inserted now (after `after`) that a row of the other kind has."""
    table = USAGE_TABLES[kind].__tablename__
    return (
        f"SELECT t.event_id FROM {table} t JOIN {_other(kind)} o ON o.event_id = t.event_id "
        "WHERE t.id > ?"
    )


def _after_purge_horizon(connection: Connection, events: Sequence[UsageEvent]) -> list[UsageEvent]:
    horizon = connection.execute(
        sa.select(RetentionState.raw_purged_before).where(RetentionState.id == 1)
    ).scalar()
    if horizon is None:
        return list(events)
    kept = [event for event in events if event.timestamp >= horizon]
    if len(kept) < len(events):
        logger.warning(
            "left out %d events that started before %s: invocations before then have been "
            "purged, so they may be recorded already",
            len(events) - len(kept),
            horizon.isoformat(),
        )
    return kept


# The columns an event fills: every column but the generated id.
_COLUMNS = {
    kind: [column.name for column in table.__table__.columns if column.name != "id"]
    for kind, table in USAGE_TABLES.items()
}


def _merge_rule(insert: Any, table: sa.Table, kind: Kind, dialect_name: str) -> Any:
    """The merge rule (module docstring): a new id is inserted; an existing row is updated only
    when it is running and of the event's name, task and project (the kind is the table).

    A finish's values win over the row's; a running event raises the spend so far to the
    larger value per column (NULL-safe) and leaves every other column alone.
    """
    excluded = insert.excluded
    running = sa.literal_column(f"'{Status.RUNNING.value}'")
    progress = excluded.status == running
    larger = sa.func.greatest if dialect_name == "postgresql" else sa.func.max

    def merged(name: str) -> Any:
        theirs, mine = excluded[name], table.c[name]
        finish = sa.func.coalesce(theirs, mine)
        if name in _GROWING:
            grown = larger(sa.func.coalesce(theirs, mine), sa.func.coalesce(mine, theirs))
            return sa.case((progress, grown), else_=finish)
        if name == "model":
            return finish
        if name == "status":
            return theirs  # the row is running: a running event keeps it so, a finish ends it
        if name == "cost_source":  # the source of the cost kept
            return sa.case(
                (
                    sa.and_(
                        excluded.cost_usd.is_not(None),
                        sa.or_(
                            sa.not_(progress),
                            table.c.cost_usd.is_(None),
                            excluded.cost_usd > table.c.cost_usd,
                        ),
                    ),
                    theirs,
                ),
                (table.c.cost_usd.is_not(None), mine),
                else_=finish,
            )
        return sa.case((progress, mine), else_=finish)

    name_column = NAME_COLUMNS[kind]
    # On PostgreSQL a partition knows (event id, timestamp) alone: the registry of event ids
    # makes the id unique (claude_api.models.partitions), and the rows come with its timestamp.
    conflict = [table.c.event_id]
    if dialect_name == "postgresql":
        conflict.append(table.c.timestamp)
    return insert.on_conflict_do_update(
        index_elements=conflict,
        set_={name: merged(name) for name in _FINISH_COLUMNS},
        where=sa.and_(
            table.c.status == running,
            table.c[name_column] == excluded[name_column],
            table.c.task_id == excluded.task_id,
            table.c.project_id.is_not_distinct_from(excluded.project_id),
        ),
    )


@cache
def _sqlite_statement_sql(kind: Kind) -> str:
    """SQLite's upsert of one row, for executemany."""
    table = USAGE_TABLES[kind].__table__
    statement = _merge_rule(sqlite.insert(table), table, kind, "sqlite").values(
        {name: sa.bindparam(name) for name in _COLUMNS[kind]}
    )
    return str(statement.compile(dialect=sqlite.pysqlite.dialect(paramstyle="named")))


@dataclass(frozen=True)
class _CopiedSql:
    """PostgreSQL's statements of one kind for `_upsert_copied`: create the temporary table,
    COPY into it, move its rows to their ids' registered start times and return its ids that
    the other kind holds, upsert from it returning the ids, statuses and start times of the
    rows written, read back the stored rows of its ids, and empty it."""

    create: str
    copy: str
    adopt: str
    upsert: str
    stored: str
    clear: str


def _incoming(kind: Kind) -> str:
    return f"incoming_{USAGE_TABLES[kind].__tablename__}"


@cache
def _claim_sql(kinds: tuple[Kind, ...]) -> str:
    """Register the new ids of the staged rows of `kinds` and lock every registered one (an
    ON CONFLICT DO UPDATE whose condition is false locks the row it meets and writes nothing),
    in event id order."""
    staged = " UNION ALL ".join(
        f"SELECT event_id, timestamp, '{kind.value}' AS kind FROM {_incoming(kind)}"
        for kind in kinds
    )
    return (
        "INSERT INTO invocation_ids (event_id, timestamp, kind) "
        f"SELECT event_id, timestamp, kind FROM ({staged}) AS staged ORDER BY event_id "
        "ON CONFLICT (event_id) DO UPDATE SET kind = invocation_ids.kind WHERE false"
    )


@cache
def _copied_sql(kind: Kind) -> _CopiedSql:
    table = USAGE_TABLES[kind].__table__
    columns = _COLUMNS[kind]
    incoming = _incoming(kind)
    listed = ", ".join(columns)
    staged = sa.table(incoming, *(sa.column(name) for name in columns))
    select = sa.select(*staged.c).order_by(staged.c.event_id)
    insert = _merge_rule(
        postgresql.insert(table).from_select(columns, select), table, kind, "postgresql"
    )
    upsert = insert.returning(table.c.id, table.c.status, table.c.timestamp).compile(
        dialect=postgresql.psycopg.dialect()
    )
    return _CopiedSql(
        create=f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} ON COMMIT DELETE ROWS AS "
        f"SELECT {listed} FROM {table.name} WITH NO DATA",
        copy=f"COPY {incoming} ({listed}) FROM STDIN",
        adopt=f"WITH adopted AS (UPDATE {incoming} i SET timestamp = r.timestamp "
        "FROM invocation_ids r WHERE r.event_id = i.event_id AND r.timestamp <> i.timestamp) "
        f"SELECT i.event_id FROM {incoming} i JOIN invocation_ids r ON r.event_id = i.event_id "
        f"WHERE r.kind <> '{kind.value}'",
        upsert=str(upsert),
        stored=f"SELECT t.event_id, t.{NAME_COLUMNS[kind]}, t.task_id, t.project_id "
        f"FROM {incoming} i JOIN {table.name} t "
        "ON t.event_id = i.event_id AND t.timestamp = i.timestamp",
        clear=f"DELETE FROM {incoming}",
    )


def _as_int(event_id: UUID) -> int:
    return event_id.int


def _sqlite_time(moment: datetime) -> str:
    # 'YYYY-MM-DD HH:MM:SS.ffffff', the first 26 characters of the ISO form of a UTC time.
    return moment.isoformat(sep=" ", timespec="microseconds")[:26]


def _driver_row(event: UsageEvent, dialect_name: str) -> dict[str, Any]:
    """The row as the driver takes it, converted as the column types would convert it."""
    row = event_row(event)
    row["status"] = event.status.value
    row["cost_source"] = event.cost_source.value if event.cost_source is not None else None
    if dialect_name == "sqlite":
        # The storage formats of SQLAlchemy's SQLite DateTime and Uuid types, so that rows
        # written here read back, and compare in queries, exactly like rows the ORM writes.
        # Events hold UTC times only.
        row["timestamp"] = _sqlite_time(event.timestamp)
        if event.finished_at is not None:
            row["finished_at"] = _sqlite_time(event.finished_at)
        row["event_id"] = event.event_id.hex
        if event.parent_id is not None:
            row["parent_id"] = event.parent_id.hex
    return row
