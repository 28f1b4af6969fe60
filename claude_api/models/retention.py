"""Retention: purging raw invocation rows, and optionally rollup buckets, older than a cutoff.

Raw rows and rollups have separate retentions: reports answer from the rollups, so purging raw
rows never touches them. Deletes run in small transactions so writers are never held up long.
On PostgreSQL, whose raw rows are kept in monthly partitions (`claude_api.models.partitions`),
the months wholly past the cutoff are detached and dropped whole, and rows are deleted only in
the month that straddles it (and the DEFAULT partition); each purge also creates the partitions
of the coming months. Every purge logs what it deleted, per table, and its horizons.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from claude_api import buckets
from claude_api.files import PRIVATE
from claude_api.models import data_version, partitions
from claude_api.models.db import write_engine
from claude_api.models.rollup_tables import (
    DurationBin,
    ErrorRollup,
    KindDurationBin,
    KindRollup,
    ModelRollup,
    NameDurationBin,
    NameRollup,
    RetentionState,
    UsageRollup,
)
from claude_api.models.rollups import GRAINS
from claude_api.models.tables import AgentUsage, SkillUsage

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000
PURGE_LOCK_NAMESPACE = 0x70_75_72_67  # any constant but the migrations': the advisory lock's key
_PG_LOCK = sa.text("SELECT pg_advisory_lock(:namespace, hashtext(current_schema()))")
_PG_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(:namespace, hashtext(current_schema()))")
_PG_UNLOCK = sa.text("SELECT pg_advisory_unlock(:namespace, hashtext(current_schema()))")

_STATE = RetentionState.__table__
_ROLLUP_TABLES = (
    UsageRollup.__table__,
    ModelRollup.__table__,
    KindRollup.__table__,
    NameRollup.__table__,
    DurationBin.__table__,
    KindDurationBin.__table__,
    NameDurationBin.__table__,
    ErrorRollup.__table__,
)


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed (or, in a dry run, would remove): invocations that started before
    `raw_before`, rollup buckets that end at or before `rollups_before` (None: kept)."""

    raw_before: datetime | None
    rollups_before: datetime | None
    agent_rows: int
    skill_rows: int
    rollup_rows: int  # all rollup tables and grains together
    dry_run: bool
    stopped: bool = False  # `stop` asked to stop between batches: the purge is incomplete
    skipped: bool = False  # another process was purging the database: this one did nothing

    @property
    def total_rows(self) -> int:
        return self.agent_rows + self.skill_rows + self.rollup_rows


def cutoff(days: int | None, now: datetime) -> datetime | None:
    """The start of the UTC day `days` days before `now`; None when `days` is None or 0 (keep).

    Whole days, so every purge of one day agrees and at least `days` days are kept.
    """
    check_days("retention", days)
    if not days:
        return None
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=days)


def check_days(name: str, days: int | None) -> None:
    """Raise ValueError unless `days` is None or a whole number of days >= 0."""
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
        raise ValueError(
            f"{name} must be a whole number of days >= 0 (0 keeps everything), got {days!r}"
        )


def purge(
    engine: Engine,
    *,
    raw_retention_days: int | None,
    rollup_retention_days: int | None,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    wait: bool = False,
) -> PurgeResult:
    """Delete the invocations (agents and skills, running or not) that started before the
    cutoff `raw_retention_days` days before `now`, and the rollup rows (every table and grain)
    whose bucket ends by the cutoff `rollup_retention_days` days before it; None or 0 keeps
    them forever.

    Cutoffs are UTC midnights (see `cutoff`); a rollup bucket goes only once it ends at or
    before its cutoff, so a month is kept whole until the month is past. Each batch of at most
    `batch_size` rows is its own transaction; `progress(n)` is called after each, and `stop()`
    before each (True stops early). A complete purge records its cutoffs in `retention_state`.
    A dry run counts what would go and changes nothing. Raises ValueError for bad days, a
    naive `now` or a batch size below 1.

    The purge logs the rows it deleted per table and both cutoffs: at WARNING when it deleted
    any (data is gone for good, and the default log level shows it), else at INFO.

    One purge at a time runs on a database (several servers share one PostgreSQL database, each
    purging daily): while another process purges, this one returns at once with `skipped` set,
    or with `wait` waits for it to finish first.
    """
    check_days("raw_retention_days", raw_retention_days)
    check_days("rollup_retention_days", rollup_retention_days)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    now = now or datetime.now(UTC)
    if now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: `now` needs a time zone")
    raw_before = cutoff(raw_retention_days, now)
    rollups_before = cutoff(rollup_retention_days, now)
    if dry_run:
        return _purge(engine, raw_before, rollups_before, True, batch_size, progress, stop)
    with purge_lock(engine, wait=wait) as ours:
        if not ours:
            logger.info("purge skipped: another process is purging this database now")
            return PurgeResult(raw_before, rollups_before, 0, 0, 0, dry_run=False, skipped=True)
        if engine.dialect.name == "postgresql":
            # The months to come, and the months from the cutoff's on that reached the DEFAULT
            # partition; older rows there are about to go.
            partitions.ensure_months(engine, now=now, since=raw_before)
        return _purge(engine, raw_before, rollups_before, False, batch_size, progress, stop)


def prepare_partitions(engine: Engine, *, now: datetime | None = None) -> None:
    """On PostgreSQL, create the partitions of the current and next months if one is missing,
    under the purge lock unless another process holds it (its purge creates them). For a
    server's start: the lock is taken only when there is work, so a purge that starts at the
    same moment is not turned away for nothing; a failure is logged, and writes go on into the
    DEFAULT partition until the daily purge."""
    if engine.dialect.name != "postgresql":
        return
    now = now or datetime.now(UTC)
    try:
        if not partitions.missing_months(engine, now=now, waiting=False):
            return
        with purge_lock(engine, wait=False) as ours:
            if ours:
                partitions.ensure_months(engine, now=now, waiting=False)
    except sa.exc.SQLAlchemyError as error:
        logger.warning(
            "the partitions of the coming months were not created (%s); rows of a month "
            "without one go into the DEFAULT partition until the daily purge",
            str(error).splitlines()[0],
        )


def _purge(
    engine: Engine,
    raw_before: datetime | None,
    rollups_before: datetime | None,
    dry_run: bool,
    batch_size: int,
    progress: Callable[[int], None] | None,
    stop: Callable[[], bool] | None,
) -> PurgeResult:
    run = _Batches(engine, dry_run=dry_run, size=batch_size, progress=progress, stop=stop)
    counts: dict[str, int] = {}
    for model in (AgentUsage, SkillUsage):
        table = model.__table__
        if engine.dialect.name == "postgresql" and not dry_run:
            counts[table.name] = _purge_partitioned(run, table.name, raw_before)
            continue
        where = table.c.timestamp < raw_before if raw_before else None
        counts[table.name] = run.delete(table, where, key=table.c.id)
    for table in _ROLLUP_TABLES:
        where = _past_buckets(table, rollups_before) if rollups_before else None
        counts[table.name] = run.delete(table, where, key=sa.tuple_(*table.primary_key.columns))
    if not dry_run and not run.stopped and (raw_before or rollups_before):
        with write_engine(engine).begin() as connection:
            _record(connection, raw_before, rollups_before)
    result = PurgeResult(
        raw_before=raw_before,
        rollups_before=rollups_before,
        agent_rows=counts[AgentUsage.__tablename__],
        skill_rows=counts[SkillUsage.__tablename__],
        rollup_rows=sum(counts[table.name] for table in _ROLLUP_TABLES),
        dry_run=dry_run,
        stopped=run.stopped,
    )
    _log(result, counts)
    return result


@contextmanager
def purge_lock(engine: Engine, *, wait: bool) -> Iterator[bool]:
    """Whether this process holds the database's purge lock for the block: a PostgreSQL
    advisory lock (per schema) held by a connection of its own, or on SQLite a lock on a file
    beside the database. Without `wait`, False at once when another process holds it."""
    if engine.dialect.name == "postgresql":
        statement = _PG_LOCK if wait else _PG_TRY_LOCK
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            ours = connection.execute(statement, {"namespace": PURGE_LOCK_NAMESPACE}).scalar()
            ours = True if wait else bool(ours)
            try:
                yield ours
            finally:
                if ours:
                    connection.execute(_PG_UNLOCK, {"namespace": PURGE_LOCK_NAMESPACE})
        return
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield True  # a database of this process alone
        return
    path = Path(database).expanduser()
    descriptor = os.open(
        path.with_name(path.name + ".purge-lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE
    )
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def _log(result: PurgeResult, counts: dict[str, int]) -> None:
    """One line saying what the purge deleted (or would delete), per table, and its cutoffs."""
    deleted = ", ".join(f"{table} {count:,}" for table, count in counts.items() if count)
    logger.log(
        logging.WARNING if result.total_rows and not result.dry_run else logging.INFO,
        "%s %s rows (%s): raw invocations that started before %s, rollup buckets that ended by "
        "%s%s",
        "purge (dry run) would delete" if result.dry_run else "purge deleted",
        f"{result.total_rows:,}",
        deleted or "none",
        _horizon(result.raw_before),
        _horizon(result.rollups_before),
        "; stopped early, the rest goes at the next purge" if result.stopped else "",
    )


def _horizon(moment: datetime | None) -> str:
    return "(kept)" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def purged_before(session: Session) -> tuple[datetime | None, datetime | None]:
    """The instants before which raw invocations, and rollup buckets, have been purged
    (None: never)."""
    found = session.execute(
        sa.select(_STATE.c.raw_purged_before, _STATE.c.rollups_purged_before).where(
            _STATE.c.id == 1
        )
    ).first()
    return (found[0], found[1]) if found else (None, None)


def bucket_floor(grain: str, moment: datetime) -> datetime:
    """The start of the UTC `grain` bucket holding `moment`."""
    return buckets.floor(moment.astimezone(UTC), grain)


def _past_buckets(table: sa.Table, before: datetime) -> sa.ColumnElement[bool]:
    # A bucket ends at or before `before` exactly when it starts before the bucket holding it;
    # a day of the other day grains (`rollup_day_starts`) when it starts a day or more before.
    return sa.or_(
        *(
            sa.and_(table.c.grain == grain, table.c.bucket_start < bucket_floor(grain, before))
            for grain in GRAINS
        ),
        sa.and_(
            table.c.grain.not_in(GRAINS),
            table.c.bucket_start <= before.astimezone(UTC) - timedelta(days=1),
        ),
    )


def _purge_partitioned(run: _Batches, table: str, before: datetime | None) -> int:
    """PostgreSQL: purge the rows of `table` that started before `before` (None: none); returns
    how many went.

    Months wholly before the cutoff are detached (one short transaction), then their ids leave
    the registry in batches, then the detached table is dropped; a month whose locks stay busy
    keeps its partition, and its rows are deleted with the straddling month's, in batches. A
    purge that stops, or dies, midway leaves a detached month, which the next purge finishes.
    """
    for month in _query(run.engine, partitions.purging_months, table):
        if run.stopped:
            return 0
        # Its rows left the table, and were counted, when an earlier purge detached it.
        rows = _query(run.engine, partitions.count_rows, partitions.purging_name(table, month))
        if _finish_detached(run, table, month, counted=False):
            logger.info(
                "dropped %s (%s rows), detached by an earlier purge",
                partitions.purging_name(table, month),
                f"{rows:,}",
            )
    if before is None:
        return 0
    total = 0
    for month in _query(run.engine, partitions.attached_months, table):
        if partitions.next_month(month) > before or run.stopped:
            break
        if run.stop and run.stop():
            run.stopped = True
            break
        if not partitions.detach_month(run.engine, table, month):
            continue
        total += _query(run.engine, partitions.count_rows, partitions.purging_name(table, month))
        _finish_detached(run, table, month)
    if not run.stopped:
        total += run.repeat(
            lambda connection: partitions.delete_before(connection, table, before, size=run.size)
        )
    return total


def _finish_detached(run: _Batches, table: str, month: datetime, *, counted: bool = True) -> bool:
    """Take the ids of a detached month out of the registry in batches (telling `progress` of
    its rows unless they were `counted` before), then drop it; False when `stop` stopped it
    first."""
    after = None

    def forget(connection: Connection) -> int:
        nonlocal after
        rows, after = partitions.forget_ids(connection, table, month, after=after, size=run.size)
        return rows

    run.repeat(forget, changes_data=False, counted=counted)
    if run.stopped:
        return False
    with write_engine(run.engine).begin() as connection:
        partitions.drop_purging(connection, table, month)
    return True


def _query(engine: Engine, function: Callable[..., Any], *arguments: Any) -> Any:
    with engine.connect() as connection:
        return function(connection, *arguments)


@dataclass
class _Batches:
    """Deleting (or counting) the rows of a table that match a condition, batch by batch."""

    engine: Engine
    dry_run: bool
    size: int
    progress: Callable[[int], None] | None
    stop: Callable[[], bool] | None
    stopped: bool = False

    def delete(self, table: sa.Table, where: Any, *, key: Any) -> int:
        """How many rows matched `where` (None: none); `key` (a column, or a tuple of the
        primary key's columns) picks them."""
        if where is None or self.stopped:
            return 0
        if self.dry_run:
            with self.engine.connect() as connection:
                count = sa.select(sa.func.count()).select_from(table).where(where)
                return int(connection.execute(count).scalar_one())
        columns = list(key.clauses) if isinstance(key, sa.Tuple) else [key]
        batch = sa.select(*columns).where(where).order_by(*columns).limit(self.size)
        statement = sa.delete(table).where(key.in_(batch))
        return self.repeat(lambda connection: connection.execute(statement).rowcount)

    def repeat(
        self, step: Callable[[Connection], int], *, changes_data: bool = True, counted: bool = True
    ) -> int:
        """Run `step` (which handles at most `size` rows and says how many) in a transaction
        of its own, again and again until it handles fewer than `size` or `stop` says stop;
        returns how many rows it handled in all, each batch's told to `progress` if `counted`."""
        writer = write_engine(self.engine)
        total = 0
        while not (self.stop and self.stop()):
            with writer.begin() as connection:
                done = step(connection)
                if done and changes_data:
                    data_version.changed(connection)
            total += done
            if done and counted and self.progress:
                self.progress(done)
            if done < self.size:
                return total
        self.stopped = True
        return total


def _record(
    connection: Connection, raw_before: datetime | None, rollups_before: datetime | None
) -> None:
    """Move the purged-before instants of `retention_state` forward (never back)."""
    data_version.changed(connection)  # a task of a purged period is now told apart
    insert = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(_STATE)
    statement = insert.values(
        id=1, raw_purged_before=raw_before, rollups_purged_before=rollups_before
    )

    def later(column: str) -> Any:
        old, new = _STATE.c[column], statement.excluded[column]
        return sa.case((new.is_(None), old), (old.is_(None), new), (old < new, new), else_=old)

    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_STATE.c.id],
            set_={
                column: later(column) for column in ("raw_purged_before", "rollups_purged_before")
            },
        )
    )
