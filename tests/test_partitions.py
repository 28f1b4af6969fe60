"""PostgreSQL's monthly partitions of the raw invocation rows: maintenance creates the coming
months and moves rows out of the DEFAULT partition, retention drops whole months and deletes
rows only in the month that straddles its horizon, the registry of event ids keeps one row per
id across months (racing writers included), queries across month boundaries answer as on
SQLite, and the migration converts a populated database without losing a row."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import EventConflict, NotFound
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models import partitions
from claude_api.models.db import alembic_config, make_engine, upgrade, write_engine
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.models.queries import (
    count_invocations,
    iter_invocation_rows,
    leaderboard,
    list_invocations,
    list_task_usage,
    list_tasks,
    stats_by_name,
    usage_by_period,
    usage_report,
    usage_stats,
)
from claude_api.models.queries.purged import count_purged_invocations
from claude_api.models.retention import prepare_partitions, purge, purged_before
from claude_api.models.rollups import ROLLUP_TABLES
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES
from claude_api.models.write import store_events
from tests.factories import add_events, make_event

NOW = datetime(2026, 6, 15, 13, 45, tzinfo=UTC)
HORIZON = datetime(2026, 5, 16, tzinfo=UTC)  # 30 days of raw rows kept at NOW
MONTHS = [datetime(2026, month, 1, tzinfo=UTC) for month in (2, 3, 4, 5, 6, 7)]


@pytest.fixture
def pg(postgresql_url: str) -> Iterator[Engine]:
    """A migrated PostgreSQL database."""
    engine = make_engine(postgresql_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def months(engine: Engine, table: str = "agent_usage") -> dict[str, int]:
    """The partitions attached to `table`, each with its row count."""
    with engine.connect() as connection:
        names = connection.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(:table)"
            ),
            {"table": table},
        ).scalars()
        return {
            name: connection.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in names
        }


def exists(engine: Engine, name: str) -> bool:
    with engine.connect() as connection:
        found = connection.execute(sa.text("SELECT to_regclass(:name)"), {"name": name})
        return found.scalar() is not None


def registry(engine: Engine) -> dict[uuid.UUID, tuple[datetime, str]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT event_id, timestamp, kind FROM invocation_ids"))
        return {row[0]: (row[1], row[2]) for row in rows}


def raw_rows(engine: Engine, table: str = "agent_usage") -> list[tuple[Any, ...]]:
    """Every row of `table` with the partition holding it, by id."""
    with engine.connect() as connection:
        found = connection.execute(
            sa.text(f"SELECT tableoid::regclass::text AS part, * FROM {table} ORDER BY id")
        )
        return [tuple(row) for row in found]


def stored(engine: Engine, kind: Kind = Kind.AGENT) -> dict[uuid.UUID, Any]:
    """The rows of one kind by event id."""
    table = USAGE_TABLES[kind].__table__
    with engine.connect() as connection:
        return {row.event_id: row for row in connection.execute(sa.select(table))}


def rollup_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            table: sorted(
                (tuple(row) for row in connection.execute(sa.text(f"SELECT * FROM {table}"))),
                key=repr,
            )
            for table in ROLLUP_TABLES
        }


def spread(step: timedelta = timedelta(hours=7)) -> list[UsageEvent]:
    """Agents (two names, two projects) every `step` from February to mid-July 2026, a skill
    inside each, every fifth failed and every seventh still running; and a task whose main
    loop starts in the last second of March and whose subagent and skill start in April."""
    events = []
    at, number = datetime(2026, 2, 3, tzinfo=UTC), 0
    while at < datetime(2026, 7, 14, tzinfo=UTC):
        status = Status.RUNNING if number % 7 == 0 else Status.FAILED if number % 5 == 0 else None
        agent = make_event(
            name="code-reviewer" if number % 2 else "Explore",
            task_id=f"task-{number // 3}",
            project_id="web" if number % 3 else "api",
            timestamp=at,
            cost_usd=0.25 * (1 + number % 4),
            duration_seconds=1.5 * (1 + number % 9),
            **({"status": status} if status else {}),
            **({"error_message": "tool failed"} if status is Status.FAILED else {}),
        )
        skill = make_event(
            kind="skill",
            name="pdf",
            task_id=agent.task_id,
            project_id=agent.project_id,
            parent_id=agent.event_id,
            timestamp=at + timedelta(minutes=3),
            cost_usd=0.125,
        )
        events += [agent, skill]
        at += step
        number += 1
    main = make_event(
        task_id="task-straddle",
        project_id="web",
        timestamp=datetime(2026, 3, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        cost_usd=1.0,
    )
    sub = make_event(
        name="Explore",
        task_id="task-straddle",
        project_id="web",
        parent_id=main.event_id,
        timestamp=datetime(2026, 4, 1, tzinfo=UTC),
        cost_usd=0.5,
    )
    skill = make_event(
        kind="skill",
        name="xlsx",
        task_id="task-straddle",
        project_id="web",
        parent_id=sub.event_id,
        timestamp=datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC),
        cost_usd=0.25,
    )
    return [*events, main, sub, skill]


def split_into_months(engine: Engine) -> None:
    """The maintenance a server runs: here it moves every month out of the DEFAULT partition
    (the migration made only the months of the machine's clock)."""
    purge(engine, raw_retention_days=None, rollup_retention_days=None, now=NOW)


# ---- maintenance ----------------------------------------------------------------------------


def test_a_new_database_has_the_current_and_next_months_and_a_default_partition(
    pg: Engine,
) -> None:
    current = partitions.month_of(datetime.now(UTC))
    following = partitions.next_month(current)
    for table in ("agent_usage", "skill_usage"):
        assert set(months(pg, table)) == {
            partitions.partition_name(table, current),
            partitions.partition_name(table, following),
            f"{table}_default",
        }
    with pg.connect() as connection:
        kinds = connection.execute(
            sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass('agent_usage')")
        )
        assert kinds.scalar_one() == "p"


def test_each_month_has_its_own_indexes(pg: Engine) -> None:
    """Every index of the parent exists on each partition, so each month's are as small as the
    month: the event id's holds the timestamp, the key is (id, timestamp)."""
    add_events(pg, *spread(timedelta(days=3)))
    split_into_months(pg)
    with pg.connect() as connection:
        parent = connection.execute(
            sa.text("SELECT count(*) FROM pg_index WHERE indrelid = 'agent_usage'::regclass")
        ).scalar_one()
        for name in months(pg):
            assert (
                connection.execute(
                    sa.text("SELECT count(*) FROM pg_index x WHERE x.indrelid = :name ::regclass"),
                    {"name": name},
                ).scalar_one()
                == parent
            ), name
            attached = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = "
                    "x.indexrelid WHERE x.indrelid = :name ::regclass"
                ),
                {"name": name},
            ).scalar_one()
            assert attached == parent, name  # each one a partition of the parent's index
        key = connection.execute(
            sa.text(
                "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_constraint c, "
                "unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) JOIN pg_attribute a ON "
                "a.attrelid = 'agent_usage'::regclass AND a.attnum = k.attnum "
                "WHERE c.conrelid = 'agent_usage'::regclass AND c.contype = 'p'"
            )
        ).scalar_one()
        assert key == ["id", "timestamp"]


def test_rows_of_a_month_without_a_partition_wait_in_the_default_one_until_maintenance(
    pg: Engine,
) -> None:
    events = spread(timedelta(days=2))
    add_events(pg, *events)
    before = {row[1:] for row in raw_rows(pg)}
    assert set(months(pg)) >= {"agent_usage_default"}
    assert months(pg)["agent_usage_default"] == sum(e.kind is Kind.AGENT for e in events)
    split_into_months(pg)
    found = months(pg)
    assert found["agent_usage_default"] == 0
    for month in MONTHS:
        expected = sum(
            e.kind is Kind.AGENT and partitions.month_of(e.timestamp) == month for e in events
        )
        assert found[partitions.partition_name("agent_usage", month)] == expected, month
    assert {row[1:] for row in raw_rows(pg)} == before  # moved, not changed
    # Writes of those months now land in their partitions.
    late = make_event(timestamp=datetime(2026, 3, 9, tzinfo=UTC))
    add_events(pg, late)
    assert months(pg)["agent_usage_p2026_03"] == found["agent_usage_p2026_03"] + 1
    assert months(pg)["agent_usage_default"] == 0


def test_prepare_partitions_creates_the_months_of_now_and_the_next(pg: Engine) -> None:
    prepare_partitions(pg, now=datetime(2031, 12, 20, tzinfo=UTC))
    assert {"agent_usage_p2031_12", "agent_usage_p2032_01"} <= set(months(pg))
    assert {"skill_usage_p2031_12", "skill_usage_p2032_01"} <= set(months(pg, "skill_usage"))
    prepare_partitions(pg, now=datetime(2031, 12, 20, tzinfo=UTC))  # nothing left to do


def test_a_server_creates_the_coming_months_when_it_starts_whatever_the_retention(
    postgresql_url: str,
) -> None:
    from claude_api.config import Settings
    from claude_api.server.app import create_app
    from tests.live_server import serve

    engine = make_engine(postgresql_url)
    upgrade(engine)
    current = partitions.month_of(datetime.now(UTC))
    following = partitions.partition_name("agent_usage", partitions.next_month(current))
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE {following}")
    settings = Settings(database_url=postgresql_url, retention_days=0, rollup_retention_days=0)
    try:
        with serve(create_app(settings, purge_delay=3600)):
            deadline = datetime.now(UTC) + timedelta(seconds=30)
            while following not in months(engine) and datetime.now(UTC) < deadline:
                threading.Event().wait(0.05)
        assert following in months(engine)
    finally:
        engine.dispose()


# ---- retention --------------------------------------------------------------------------------


def test_purging_drops_whole_months_and_deletes_rows_only_in_the_straddling_one(
    pg: Engine,
) -> None:
    events = spread()
    add_events(pg, *events)
    split_into_months(pg)
    kept_rollups = rollup_rows(pg)
    straddling = partitions.partition_name("agent_usage", datetime(2026, 5, 1, tzinfo=UTC))
    with pg.connect() as connection:
        may_oid = connection.execute(sa.text(f"SELECT '{straddling}'::regclass::oid")).scalar()
    progress: list[int] = []
    result = purge(
        pg,
        raw_retention_days=30,
        rollup_retention_days=None,
        now=NOW,
        batch_size=50,
        progress=progress.append,
    )
    old = [e for e in events if e.timestamp < HORIZON]
    assert (result.agent_rows, result.skill_rows) == (
        sum(e.kind is Kind.AGENT for e in old),
        sum(e.kind is Kind.SKILL for e in old),
    )
    assert sum(progress) == len(old) and max(progress) <= 50
    for table in ("agent_usage", "skill_usage"):
        attached = months(pg, table)
        for month in MONTHS[:3]:  # February to April: gone whole
            name = partitions.partition_name(table, month)
            assert name not in attached and not exists(pg, name)
            assert not exists(pg, partitions.purging_name(table, month))
        kind = Kind.AGENT if table == "agent_usage" else Kind.SKILL
        for month in MONTHS[3:]:
            name = partitions.partition_name(table, month)
            kept = [
                e
                for e in events
                if e.kind is kind
                and e.timestamp >= HORIZON
                and partitions.month_of(e.timestamp) == month
            ]
            assert attached[name] == len(kept), name
    with pg.connect() as connection:
        # May is the same table: its rows before the horizon were deleted, not the month.
        assert connection.execute(sa.text(f"SELECT '{straddling}'::regclass::oid")).scalar() == (
            may_oid
        )
    young = {e.event_id: e for e in events if e.timestamp >= HORIZON}
    assert set(registry(pg)) == set(young)
    assert all(registry(pg)[i] == (e.timestamp, e.kind.value) for i, e in young.items())
    assert rollup_rows(pg) == kept_rollups
    with Session(pg) as session:
        assert purged_before(session) == (HORIZON, None)
    # A replay of everything counts nothing twice, and what is past the horizon stays out.
    add_events(pg, *events)
    assert rollup_rows(pg) == kept_rollups
    assert set(registry(pg)) == set(young)


def test_a_purge_stopped_after_detaching_a_month_is_finished_by_the_next(pg: Engine) -> None:
    events = spread(timedelta(hours=5))
    add_events(pg, *events)
    split_into_months(pg)
    february = [e for e in events if e.timestamp < MONTHS[1] and e.kind is Kind.AGENT]
    batches: list[int] = []
    result = purge(
        pg,
        raw_retention_days=30,
        rollup_retention_days=None,
        now=NOW,
        batch_size=10,
        progress=batches.append,
        stop=lambda: len(batches) >= 2,
    )
    # February left the table whole, its ids half forgotten: the purge is incomplete.
    assert result.stopped and result.agent_rows == len(february) and result.skill_rows == 0
    assert batches == [10, 10]
    assert exists(pg, "agent_usage_purging_2026_02")
    assert "agent_usage_p2026_02" not in months(pg)
    with Session(pg) as session:
        assert purged_before(session) == (None, None)
    with pg.connect() as connection:
        ids = set(connection.execute(sa.text("SELECT event_id FROM agent_usage")).scalars())
    assert not ids & {e.event_id for e in february}
    done = purge(pg, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    assert not done.stopped
    old = [e for e in events if e.timestamp < HORIZON]
    assert result.agent_rows + done.agent_rows == sum(e.kind is Kind.AGENT for e in old)
    assert not exists(pg, "agent_usage_purging_2026_02")
    assert set(registry(pg)) == {e.event_id for e in events if e.timestamp >= HORIZON}


def test_a_month_whose_locks_stay_busy_is_purged_row_by_row(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long read of the table holds the lock a detach needs: the purge does not queue every
    query behind it, it deletes that month's rows in batches; the next purge drops the empty
    month."""
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")
    events = spread(timedelta(days=1))
    add_events(pg, *events)
    split_into_months(pg)
    reader = pg.connect()
    try:
        reader.execute(sa.text("SELECT count(*) FROM agent_usage"))  # its lock lasts till commit
        result = purge(pg, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    finally:
        reader.rollback()
        reader.close()
    old = [e for e in events if e.timestamp < HORIZON]
    assert result.agent_rows == sum(e.kind is Kind.AGENT for e in old)
    attached = months(pg)
    assert attached["agent_usage_p2026_02"] == 0  # still there, emptied
    assert "skill_usage_p2026_02" not in months(pg, "skill_usage")  # nobody read skills
    assert set(registry(pg)) == {e.event_id for e in events if e.timestamp >= HORIZON}
    again = purge(pg, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    assert again.total_rows == 0
    assert "agent_usage_p2026_02" not in months(pg)


# ---- one row per event id -----------------------------------------------------------------


def test_a_later_event_that_starts_in_another_month_lands_on_the_row_of_its_id(
    pg: Engine,
) -> None:
    add_events(pg, *spread(timedelta(days=9)))
    split_into_months(pg)
    march = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    start = make_event(status=Status.RUNNING, timestamp=march, task_id="late")
    add_events(pg, start)
    # The finish says the invocation started in April, its progress in May.
    progress = start.model_copy(
        update={"timestamp": datetime(2026, 5, 2, tzinfo=UTC), "cost_usd": 0.5}
    )
    add_events(pg, progress)
    finish = make_event(
        event_id=start.event_id,
        timestamp=datetime(2026, 4, 1, 0, 5, tzinfo=UTC),
        task_id="late",
        cost_usd=0.75,
    )
    add_events(pg, finish)
    add_events(pg, finish)  # redelivered
    mine = [row for row in raw_rows(pg) if row[2] == start.event_id]
    assert len(mine) == 1
    row = stored(pg)[start.event_id]
    assert (row.timestamp, row.status, row.cost_usd) == (march, "completed", 0.75)
    assert mine[0][0] == "agent_usage_p2026_03"
    assert registry(pg)[start.event_id] == (march, "agent")
    with Session(pg) as session:
        stats = usage_stats(session, filter=UsageFilter(task_id="late"))
    assert (stats.invocations, stats.completed, stats.total_cost_usd) == (1, 1, 0.75)
    with pg.connect() as connection:
        buckets = connection.execute(
            sa.text(
                "SELECT bucket_start, invocations FROM usage_rollup WHERE grain = 'month' "
                "AND kind = 'agent' AND name = 'code-reviewer' AND project_key = ''"
            )
        ).all()
    assert buckets == [(datetime(2026, 3, 1, tzinfo=UTC), 1)]  # counted once, in March


def race(*writers: Callable[[], None]) -> list[BaseException | None]:
    """Run the writers at the same moment, each on its own thread and connection; what each
    raised (None: nothing)."""
    barrier = threading.Barrier(len(writers), timeout=30)

    def run(writer: Callable[[], None]) -> BaseException | None:
        barrier.wait()
        try:
            writer()
        except BaseException as error:
            return error
        return None

    with ThreadPoolExecutor(len(writers)) as pool:
        return list(pool.map(run, writers))


def test_writers_racing_one_id_with_starts_in_two_months_store_one_row(pg: Engine) -> None:
    add_events(pg, *spread(timedelta(days=9)))
    split_into_months(pg)
    for number in range(25):
        event_id = uuid.uuid4()
        start = make_event(
            event_id=event_id,
            status=Status.RUNNING,
            task_id=f"race-{number}",
            timestamp=datetime(2026, 3, 31, 23, 59, tzinfo=UTC),
        )
        finish = make_event(
            event_id=event_id,
            task_id=f"race-{number}",
            timestamp=datetime(2026, 4, 1, 0, 1, tzinfo=UTC),
        )
        outcomes = race(partial(add_events, pg, start), partial(add_events, pg, finish))
        assert outcomes == [None, None]
        mine = [row for row in raw_rows(pg) if row[2] == event_id]
        assert len(mine) == 1, number
        assert stored(pg)[event_id].status == "completed"
    with Session(pg) as session:
        raced = UsageFilter(since=datetime(2026, 3, 31, 23, tzinfo=UTC), until=MONTHS[2])
        stats = usage_stats(session, filter=raced.replace(name="code-reviewer"))
    racers = [r for r in stored(pg).values() if r.task_id.startswith("race-")]
    assert len(racers) == 25
    assert {r.timestamp for r in racers} <= {
        datetime(2026, 3, 31, 23, 59, tzinfo=UTC),
        datetime(2026, 4, 1, 0, 1, tzinfo=UTC),
    }
    assert stats.invocations == stats.completed + stats.failed  # none left running


def test_an_id_raced_as_an_agent_and_as_a_skill_is_stored_once(pg: Engine) -> None:
    """Before the registry the two tables could each take the same new id at once."""
    for _ in range(15):
        event_id = uuid.uuid4()
        agent = make_event(event_id=event_id)
        skill = make_event(event_id=event_id, kind="skill", name="pdf")
        outcomes = race(partial(add_events, pg, agent), partial(add_events, pg, skill))
        assert sorted(type(o).__name__ for o in outcomes) == ["EventConflict", "NoneType"]
        conflict = next(o for o in outcomes if o is not None)
        assert isinstance(conflict, EventConflict)
        assert conflict.event_ids == {event_id}
        kept, refused = (
            (Kind.AGENT, Kind.SKILL) if outcomes[0] is None else (Kind.SKILL, Kind.AGENT)
        )
        assert event_id in stored(pg, kept) and event_id not in stored(pg, refused)
        assert registry(pg)[event_id][1] == kept.value


# ---- queries across month boundaries ---------------------------------------------------------


def answers(engine: Engine) -> dict[str, Any]:
    """What the query layer answers over the spread data: statistics, leaderboards, histories
    (UTC and a zone whose months straddle two UTC months), reports, tasks, invocation pages
    and the export's rows, over ranges that cross month boundaries."""
    across = UsageFilter(
        since=datetime(2026, 3, 17, 5, 30, tzinfo=UTC), until=datetime(2026, 5, 2, 7, tzinfo=UTC)
    )
    zoned = UsageFilter(tz="America/Los_Angeles")
    found: dict[str, Any] = {}
    with Session(engine) as session:
        for label, filter in (("all", UsageFilter()), ("across", across), ("zoned", zoned)):
            found[f"stats {label}"] = usage_stats(session, filter=filter)
            found[f"by name {label}"] = stats_by_name(session, filter=filter, limit=10)
            for metric in (LeaderboardMetric.COST, LeaderboardMetric.P95):
                found[f"top {metric} {label}"] = leaderboard(session, filter=filter, metric=metric)
            found[f"count {label}"] = count_invocations(session, filter=filter)
            found[f"tasks {label}"] = list_tasks(session, filter=filter, limit=20)
            found[f"export {label}"] = list(iter_invocation_rows(session, filter=filter, batch=37))
        found["months"] = usage_by_period(
            session,
            filter=zoned.replace(since=MONTHS[0], until=MONTHS[-1]),
            period=Period.MONTH,
        )
        found["days"] = usage_by_period(session, filter=across, period=Period.DAY)
        found["report"] = usage_report(
            session, period=Period.MONTH, on=date(2026, 4, 10), filter=zoned, now=NOW
        )
        try:
            found["task"] = list_task_usage(session, task_id="task-straddle")
        except NotFound as error:  # once purged, says how many invocations went
            found["task"] = str(error)
        pages, after = [], None
        while True:
            page = list_invocations(session, filter=across, limit=40, after=after)
            pages.append(page)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        found["pages"] = pages
        found["purged"] = count_purged_invocations(session, filter=across)
    return {label: _plain(value) for label, value in found.items()}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def test_queries_across_month_boundaries_answer_as_on_sqlite(pg: Engine, sqlite_url: str) -> None:
    lite = make_engine(sqlite_url)
    upgrade(lite)
    try:
        events = spread()
        for engine in (lite, pg):
            add_events(engine, *events)
        split_into_months(pg)
        assert sum(1 for rows in months(pg).values() if rows) >= 6
        assert answers(pg) == answers(lite)
        for engine in (lite, pg):
            purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
        assert not exists(pg, "agent_usage_p2026_03")
        purged = answers(pg)
        assert purged == answers(lite)
        assert purged["purged"]["invocations"] > 0 and "purged" in purged["task"]
    finally:
        lite.dispose()


# ---- the migration ---------------------------------------------------------------------------


def _insert_as_of_0008(engine: Engine, events: list[UsageEvent]) -> None:
    """Raw rows as the write path of revision 0008 stored them (the rollups play no part)."""
    with engine.begin() as connection:
        for event in events:
            table = USAGE_TABLES[event.kind].__table__
            values = {
                column.name: getattr(event, column.name)
                for column in table.columns
                if column.name not in ("id", NAME_COLUMNS[event.kind])
            }
            values["status"] = event.status.value
            values["cost_source"] = event.cost_source.value if event.cost_source else None
            connection.execute(
                table.insert().values(**values, **{NAME_COLUMNS[event.kind]: event.name})
            )


def test_the_migration_keeps_every_row_and_so_does_its_downgrade(postgresql_url: str) -> None:
    engine = make_engine(postgresql_url)
    try:
        upgrade(engine, "0008")
        events = spread(timedelta(hours=11))
        _insert_as_of_0008(engine, events)
        before = {table: raw_rows(engine, table) for table in partitions.PARTITIONED}
        upgrade(engine)
        for table in partitions.PARTITIONED:
            after = raw_rows(engine, table)
            assert [row[1:] for row in after] == [row[1:] for row in before[table]]
            for row in after:
                month = partitions.month_of(row[6])  # the timestamp column
                assert row[0] == partitions.partition_name(table, month), row
        assert registry(engine) == {e.event_id: (e.timestamp, e.kind.value) for e in events}
        # The ids go on from the old sequence; running rows finish in place.
        running = next(e for e in events if e.status is Status.RUNNING)
        add_events(engine, running.model_copy(update={"status": Status.COMPLETED}))
        add_events(engine, make_event(timestamp=datetime(2026, 4, 2, tzinfo=UTC)))
        ids = [row[1] for row in raw_rows(engine)]
        assert len(ids) == len(set(ids)) == len(before["agent_usage"]) + 1
        assert stored(engine)[running.event_id].status == "completed"
        command.check(alembic_config(engine))
        current = {table: raw_rows(engine, table) for table in partitions.PARTITIONED}
        command.downgrade(alembic_config(engine), "0008")
        for table in partitions.PARTITIONED:
            assert [row[1:] for row in raw_rows(engine, table)] == [
                row[1:] for row in current[table]
            ]
            assert {row[0] for row in raw_rows(engine, table)} == {table}
        assert not exists(engine, "invocation_ids")
        upgrade(engine)
        assert len(raw_rows(engine)) == len(current["agent_usage"])
    finally:
        engine.dispose()


def test_sqlite_has_neither_partitions_nor_a_registry(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        add_events(engine, *spread(timedelta(days=5)))
        purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
        names = set(sa.inspect(engine).get_table_names())
        assert "invocation_ids" not in names
        assert not any(partitions.is_partition_name(name) for name in names)
    finally:
        engine.dispose()


def test_a_row_written_into_the_default_partition_while_its_month_is_created_is_moved(
    pg: Engine,
) -> None:
    """A writer whose row of a month without a partition is not committed yet when maintenance
    creates that month: maintenance waits for it and moves its row, instead of failing to
    attach the month over a DEFAULT partition that holds a row of it."""
    add_events(pg, make_event(timestamp=datetime(2026, 3, 2, tzinfo=UTC)))
    late = make_event(timestamp=datetime(2026, 3, 20, tzinfo=UTC))
    writer = Session(write_engine(pg))
    try:
        store_events(writer, [late])  # into the DEFAULT partition, not committed yet
        with ThreadPoolExecutor(1) as pool:
            created = pool.submit(partitions.ensure_months, pg, now=NOW)
            with pg.connect() as connection:
                deadline = datetime.now(UTC) + timedelta(seconds=20)
                # Until maintenance waits for the writer's lock.
                while (
                    datetime.now(UTC) < deadline
                    and not connection.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                            "WHERE NOT l.granted AND c.relname = 'agent_usage_default'"
                        )
                    ).scalar_one()
                ):
                    connection.rollback()
                    threading.Event().wait(0.02)
            writer.commit()
            assert "agent_usage_p2026_03" in created.result(timeout=30)
    finally:
        writer.close()
    assert months(pg)["agent_usage_p2026_03"] == 2
    assert months(pg)["agent_usage_default"] == 0


def test_the_downgrade_keeps_the_default_partitions_rows_and_drops_a_detached_month(
    pg: Engine,
) -> None:
    """Downgraded midway through a purge, with rows of months without a partition: every row
    still attached comes back into the plain tables, and the month the purge had detached (its
    rows already counted as purged) goes with the partitions instead of staying as a stray
    table."""
    events = spread(timedelta(hours=13))
    add_events(pg, *events)
    split_into_months(pg)
    waiting = [
        make_event(timestamp=datetime(2025, 11, 5, tzinfo=UTC)),
        make_event(kind="skill", name="pdf", timestamp=datetime(2020, 7, 1, tzinfo=UTC)),
    ]
    add_events(pg, *waiting)
    assert months(pg)["agent_usage_default"] == 1
    assert months(pg, "skill_usage")["skill_usage_default"] == 1
    batches: list[int] = []
    stopped = purge(
        pg,
        raw_retention_days=30,
        rollup_retention_days=None,
        now=NOW,
        batch_size=5,
        progress=batches.append,
        stop=lambda: len(batches) >= 1,
    )
    assert stopped.stopped and exists(pg, "agent_usage_purging_2026_02")
    kept = {table: raw_rows(pg, table) for table in partitions.PARTITIONED}
    command.downgrade(alembic_config(pg), "0008")
    for table in partitions.PARTITIONED:
        assert [row[1:] for row in raw_rows(pg, table)] == [row[1:] for row in kept[table]]
    ids = {row[2] for table in partitions.PARTITIONED for row in raw_rows(pg, table)}
    assert {e.event_id for e in waiting} <= ids
    with pg.connect() as connection:
        stray = connection.execute(
            sa.text(
                "SELECT relname FROM pg_class WHERE relkind = 'r' "
                "AND (relname LIKE 'agent_usage%' OR relname LIKE 'skill_usage%') "
                "AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = "
                "current_schema())"
            )
        ).scalars()
        assert sorted(stray) == ["agent_usage", "skill_usage"]
    upgrade(pg)
    assert len(raw_rows(pg)) == len(kept["agent_usage"])
    command.check(alembic_config(pg))


def test_the_purge_deletes_old_rows_of_the_default_partition_and_keeps_it(pg: Engine) -> None:
    """Rows of months without a partition: those before the horizon's month are deleted one
    by one (the DEFAULT partition stays, attached, for the rows of months to come); those of
    the horizon's month and later get their month's partition first, where the purge deletes
    only what started before the horizon."""
    old = [
        make_event(timestamp=datetime(2025, 12, 24, tzinfo=UTC)),
        make_event(kind="skill", name="pdf", timestamp=datetime(2026, 4, 30, tzinfo=UTC)),
    ]
    straddling = [
        make_event(timestamp=datetime(2026, 5, 15, 23, 59, tzinfo=UTC)),  # before the horizon
        make_event(timestamp=HORIZON),
    ]
    young = make_event(timestamp=datetime(2026, 6, 2, tzinfo=UTC))
    add_events(pg, *old, *straddling, young)
    assert months(pg)["agent_usage_default"] == 4
    result = purge(pg, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    assert (result.agent_rows, result.skill_rows) == (2, 1)
    agents, skills = months(pg), months(pg, "skill_usage")
    assert agents["agent_usage_default"] == skills["skill_usage_default"] == 0
    assert agents["agent_usage_p2026_05"] == agents["agent_usage_p2026_06"] == 1
    assert "agent_usage_p2025_12" not in agents and "skill_usage_p2026_04" not in skills
    assert set(registry(pg)) == {straddling[1].event_id, young.event_id}
    later = make_event(timestamp=datetime(2025, 12, 25, tzinfo=UTC))  # past the horizon now
    add_events(pg, later)
    add_events(pg, make_event(timestamp=datetime(2026, 8, 1, tzinfo=UTC)))
    assert months(pg)["agent_usage_default"] == 1  # still takes months without a partition
