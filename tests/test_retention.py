"""Retention: purging old raw invocations in batches while the rollups stay, purging rollup
buckets only once they are whole past their cutoff, the settings, `analytics purge` and the
server's daily purge."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.config import Settings
from claude_api.errors import NotFound
from claude_api.events import Status, UsageEvent
from claude_api.models.db import make_engine, upgrade
from claude_api.models.queries import list_task_usage
from claude_api.models.retention import PurgeResult, purge, purged_before
from claude_api.models.rollups import ROLLUP_TABLES
from claude_api.server.app import create_app, purge_periodically
from claude_api.server.services import Services
from tests.factories import add_events, make_event
from tests.live_server import serve

NOW = datetime(2026, 6, 15, 13, 45, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def history(now: datetime = NOW) -> list[UsageEvent]:
    """Agents and skills from 100 days before `now` to now, finished, failed and running."""
    events = []
    for days in (100, 60, 31, 30.5, 29.9, 10, 0.1):
        at = now - days * DAY
        agent = make_event(timestamp=at, task_id=f"task-{days}")
        events += [
            agent,
            make_event(kind="skill", name="pdf", parent_id=agent.event_id, timestamp=at),
            make_event(
                name="planner",
                timestamp=at + HOUR,
                status=Status.FAILED,
                error_message="crashed",
            ),
        ]
    events.append(make_event(timestamp=now - 45 * DAY, status=Status.RUNNING))
    return events


def table_rows(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        found = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
    return sorted((tuple(row) for row in found), key=repr)


def starts(engine: Engine, table: str) -> list[datetime]:
    """The start times of the raw rows of `table`, sorted."""
    with Session(engine) as session:
        rows = session.execute(sa.text(f"SELECT timestamp FROM {table}")).scalars()
        return sorted(_utc(value) for value in rows)


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite, read without the column's type
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rollups(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    return {table: table_rows(engine, table) for table in ROLLUP_TABLES}


# ---- purging raw rows ---------------------------------------------------------------------------


def test_purge_deletes_only_the_raw_rows_before_the_cutoff_in_batches(engine: Engine) -> None:
    events = history()
    add_events(engine, *events)
    kept_rollups = rollups(engine)
    batches: list[int] = []
    result = purge(
        engine,
        raw_retention_days=30,
        rollup_retention_days=None,
        now=NOW,
        batch_size=2,
        progress=batches.append,
    )
    cutoff = datetime(2026, 5, 16, tzinfo=UTC)  # midnight of the day 30 days before
    assert result.raw_before == cutoff and result.rollups_before is None
    old = [e for e in events if e.timestamp < cutoff]
    old_agents = [e for e in old if e.kind.value == "agent"]
    assert (result.agent_rows, result.skill_rows, result.rollup_rows) == (
        len(old_agents),
        len(old) - len(old_agents),
        0,
    )
    assert batches and max(batches) <= 2 and sum(batches) == len(old)
    for kind, table in (("agent", "agent_usage"), ("skill", "skill_usage")):
        expected = sorted(e.timestamp for e in events if e.kind.value == kind and e not in old)
        assert starts(engine, table) == expected
    assert rollups(engine) == kept_rollups  # reports over the purged days still answer


def test_replaying_events_of_a_purged_period_does_not_count_them_twice(engine: Engine) -> None:
    events = history()
    add_events(engine, *events)
    result = purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    kept_rollups = rollups(engine)
    kept_agents = starts(engine, "agent_usage")
    add_events(engine, *events)  # a client retrying everything it ever sent
    assert rollups(engine) == kept_rollups
    assert starts(engine, "agent_usage") == kept_agents
    assert all(t >= result.raw_before for t in kept_agents)


def test_a_batch_wholly_of_a_purged_period_is_left_out_without_error(engine: Engine) -> None:
    """A producer's spool delivered after the purge, every event of it too old: the batch is
    accepted and leaves nothing, as an empty batch does."""
    events = history()
    add_events(engine, *events)
    purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    kept = {table: table_rows(engine, table) for table in ("agent_usage", "skill_usage")}
    kept_rollups = rollups(engine)
    add_events(engine, *(e for e in events if e.timestamp < datetime(2026, 5, 16, tzinfo=UTC)))
    add_events(engine)
    assert {table: table_rows(engine, table) for table in kept} == kept
    assert rollups(engine) == kept_rollups


def test_a_dry_run_counts_the_same_rows_and_deletes_nothing(engine: Engine) -> None:
    add_events(engine, *history())
    before = {table: table_rows(engine, table) for table in ("agent_usage", "skill_usage")}
    kept_rollups = rollups(engine)
    options: dict[str, Any] = {"raw_retention_days": 30, "rollup_retention_days": 40, "now": NOW}
    dry = purge(engine, dry_run=True, **options)
    assert dry.dry_run and dry.total_rows > 0
    assert {table: table_rows(engine, table) for table in before} == before
    assert rollups(engine) == kept_rollups
    with Session(engine) as session:
        assert purged_before(session) == (None, None)
    done = purge(engine, batch_size=3, **options)
    assert (done.agent_rows, done.skill_rows, done.rollup_rows) == (
        dry.agent_rows,
        dry.skill_rows,
        dry.rollup_rows,
    )
    assert not done.dry_run
    assert purge(engine, **options).total_rows == 0


def row_counts(engine: Engine) -> dict[str, int]:
    """How many rows each usage and rollup table holds."""
    with engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("agent_usage", "skill_usage", *ROLLUP_TABLES)
        }


def test_a_purge_logs_the_rows_it_deleted_per_table_and_its_horizons(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    events = history()
    add_events(engine, *events)
    later = datetime(2026, 8, 31, 12, tzinfo=UTC)  # 60 days before: 2026-07-02
    counts = [row_counts(engine)]
    with caplog.at_level(logging.INFO, logger="claude_api.models.retention"):
        purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
        counts.append(row_counts(engine))
        purge(engine, raw_retention_days=60, rollup_retention_days=60, now=later)
        counts.append(row_counts(engine))
        purge(engine, raw_retention_days=60, rollup_retention_days=60, now=later)
    logged = [r for r in caplog.records if r.name == "claude_api.models.retention"]
    assert [record.levelno for record in logged] == [logging.WARNING] * 2 + [logging.INFO]
    first, second, nothing = (parse_purge_log(record.getMessage()) for record in logged)

    def deleted(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        return {
            table: before[table] - after[table] for table in before if before[table] > after[table]
        }

    cutoff = datetime(2026, 5, 16, tzinfo=UTC)
    old = [e for e in events if e.timestamp < cutoff]
    agents = sum(e.kind.value == "agent" for e in old)
    by_table = {"agent_usage": agents, "skill_usage": len(old) - agents}
    assert first == (len(old), by_table, "2026-05-16T00:00:00Z", "(kept)")
    assert deleted(counts[0], counts[1]) == by_table
    by_table = deleted(counts[1], counts[2])
    assert set(ROLLUP_TABLES) < set(by_table)
    assert second == (
        sum(by_table.values()),
        by_table,
        "2026-07-02T00:00:00Z",
        "2026-07-02T00:00:00Z",
    )
    assert nothing == (0, {}, "2026-07-02T00:00:00Z", "2026-07-02T00:00:00Z")


def parse_purge_log(message: str) -> tuple[int, dict[str, int], str, str]:
    """(rows, rows per table, raw cutoff, rollup cutoff) of a purge's log line."""
    found = re.fullmatch(
        r"purge deleted ([\d,]+) rows \((.*)\): raw invocations that started before (\S+), "
        r"rollup buckets that ended by (\S+)",
        message,
    )
    assert found, message
    rows, tables, raw, rollups = found.groups()
    by_table = {}
    if tables != "none":
        for item in tables.split(", "):
            table, count = item.split(" ")
            by_table[table] = int(count.replace(",", ""))
    return int(rows.replace(",", "")), by_table, raw, rollups


def test_zero_or_none_keeps_everything(engine: Engine) -> None:
    add_events(engine, *history())
    everything = {table: table_rows(engine, table) for table in ("agent_usage", *ROLLUP_TABLES)}
    for days in (0, None):
        result = purge(engine, raw_retention_days=days, rollup_retention_days=days, now=NOW)
        assert result == PurgeResult(None, None, 0, 0, 0, dry_run=False)
    assert {table: table_rows(engine, table) for table in everything} == everything
    with Session(engine) as session:
        assert purged_before(session) == (None, None)


def test_a_purge_asked_to_stop_leaves_the_rest_and_records_nothing(engine: Engine) -> None:
    add_events(engine, *history())
    batches: list[int] = []
    result = purge(
        engine,
        raw_retention_days=30,
        rollup_retention_days=None,
        now=NOW,
        batch_size=2,
        progress=batches.append,
        stop=lambda: len(batches) >= 1,
    )
    assert result.stopped and result.agent_rows == 2 and result.skill_rows == 0
    with Session(engine) as session:
        assert purged_before(session) == (None, None)
    rest = purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    assert not rest.stopped and rest.agent_rows > 0


# ---- purging rollups ----------------------------------------------------------------------------


def bucket_starts(engine: Engine, table: str) -> dict[str, list[datetime]]:
    with engine.connect() as connection:
        found = connection.execute(sa.text(f"SELECT grain, bucket_start FROM {table}")).all()
    by_grain: dict[str, set[datetime]] = {"hour": set(), "day": set(), "month": set()}
    for grain, start in found:
        by_grain[grain].add(_utc(start))
    return {grain: sorted(moments) for grain, moments in by_grain.items()}


def test_rollup_buckets_go_only_once_they_end_by_the_cutoff(engine: Engine) -> None:
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)  # 10 days before: 2026-03-05T00:00Z, mid-month
    at = [
        datetime(2026, 2, 20, 10, 30, tzinfo=UTC),  # its month ended before the cutoff
        datetime(2026, 3, 4, 23, 30, tzinfo=UTC),  # hour and day end at the cutoff
        datetime(2026, 3, 5, 0, 10, tzinfo=UTC),  # after the cutoff
    ]
    add_events(
        engine,
        *(make_event(timestamp=t, status=Status.FAILED, error_message="boom") for t in at),
    )
    result = purge(engine, raw_retention_days=None, rollup_retention_days=10, now=now)
    assert result.rollups_before == datetime(2026, 3, 5, tzinfo=UTC)
    # Every table; per grain, Feb 20 lost 3 buckets, Mar 4 its hour and day: 5 rows each.
    assert result.rollup_rows == len(ROLLUP_TABLES) * 5 and result.agent_rows == 0
    for table in ROLLUP_TABLES:
        assert bucket_starts(engine, table) == {
            "hour": [at[2].replace(minute=0)],
            "day": [datetime(2026, 3, 5, tzinfo=UTC)],
            "month": [datetime(2026, 3, 1, tzinfo=UTC)],
        }
    with engine.connect() as connection:
        march = connection.execute(
            sa.text("SELECT invocations FROM usage_rollup WHERE grain = 'month'")
        ).scalar_one()
    assert march == 2  # the month is whole: March 4's invocation is still in it
    assert len(starts(engine, "agent_usage")) == 3  # raw rows are another retention's business


def test_retention_state_records_the_cutoffs_and_never_moves_back(engine: Engine) -> None:
    add_events(engine, *history())
    purge(engine, raw_retention_days=30, rollup_retention_days=60, now=NOW)
    first = (datetime(2026, 5, 16, tzinfo=UTC), datetime(2026, 4, 16, tzinfo=UTC))
    with Session(engine) as session:
        assert purged_before(session) == first
    purge(engine, raw_retention_days=50, rollup_retention_days=None, now=NOW)
    with Session(engine) as session:
        assert purged_before(session) == first
    purge(engine, raw_retention_days=30, rollup_retention_days=60, now=NOW + 2 * DAY)
    with Session(engine) as session:
        assert purged_before(session) == tuple(moment + 2 * DAY for moment in first)


def test_a_task_of_a_purged_period_says_it_was_purged(engine: Engine) -> None:
    events = history()
    add_events(engine, *events)
    with Session(engine) as session:
        with pytest.raises(NotFound) as never:
            list_task_usage(session, task_id="nope")
        assert "purged" not in str(never.value)
        assert list_task_usage(session, task_id="task-60")
    purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    with Session(engine) as session:
        with pytest.raises(NotFound) as purged:
            list_task_usage(session, task_id="task-60")
        assert list_task_usage(session, task_id="task-10")
    cutoff = datetime(2026, 5, 16, tzinfo=UTC)
    gone = [e for e in events if e.timestamp < cutoff and e.status is not Status.RUNNING]
    assert str(purged.value) == (
        "no invocation of task 'task-60' has been recorded; invocations that started before "
        f"2026-05-16T00:00:00Z have been purged from the raw rows (the rollups still count "
        f"{len(gone)} of them)"
    )


@pytest.mark.parametrize("days", [-1, 1.5, True, "30"])
def test_purge_refuses_bad_retentions(sqlite_url: str, days: Any) -> None:
    engine = make_engine(sqlite_url)
    with pytest.raises(ValueError, match="whole number of days >= 0"):
        purge(engine, raw_retention_days=days, rollup_retention_days=None)
    with pytest.raises(ValueError, match="rollup_retention_days"):
        purge(engine, raw_retention_days=None, rollup_retention_days=days)
    with pytest.raises(ValueError, match="time zone"):
        purge(engine, raw_retention_days=1, rollup_retention_days=None, now=datetime(2026, 1, 1))
    engine.dispose()


# ---- settings -----------------------------------------------------------------------------------


def test_the_retention_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().retention_days, Settings().rollup_retention_days) == (90, 0)
    monkeypatch.setenv("CLAUDE_API_RETENTION_DAYS", "30")
    monkeypatch.setenv("CLAUDE_API_ROLLUP_RETENTION_DAYS", "365")
    assert (Settings().retention_days, Settings().rollup_retention_days) == (30, 365)
    assert Settings(retention_days=0, rollup_retention_days=0).retention_days == 0


@pytest.mark.parametrize(
    ("raw", "rollups", "message"),
    [
        (-1, 0, "greater than or equal to 0"),
        (30, -5, "greater than or equal to 0"),
        (30, 10, "must be 0 (keep forever) or at least CLAUDE_API_RETENTION_DAYS"),
        (0, 10, "raw rows are kept forever"),
    ],
)
def test_bad_retention_settings_are_refused(raw: int, rollups: int, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings(retention_days=raw, rollup_retention_days=rollups)


# ---- the command --------------------------------------------------------------------------------


def run_cli(url: str, *args: str, **env: str) -> Any:
    environment = {"CLAUDE_API_DATABASE_URL": url, "CLAUDE_API_URL": None, "COLUMNS": "100"}
    return CliRunner().invoke(app, ["analytics", "purge", *args], env={**environment, **env})


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_the_purge_command_dry_run_then_for_real(engine: Engine) -> None:
    now = datetime.now(UTC)
    events = history(now)
    add_events(engine, *events)
    url = database_url(engine)
    dry = run_cli(url, "--dry-run", "--retention-days", "30", "--json")
    assert dry.exit_code == 0, (dry.stdout, dry.stderr)
    counted = json.loads(dry.stdout)
    cutoff = now.replace(hour=0, minute=0, second=0, microsecond=0) - 30 * DAY
    old = [e for e in events if e.timestamp < cutoff]
    assert counted == {
        "dry_run": True,
        "raw_before": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rollups_before": None,
        "agent_rows": sum(e.kind.value == "agent" for e in old),
        "skill_rows": sum(e.kind.value == "skill" for e in old),
        "rollup_rows": 0,
    }
    assert len(starts(engine, "agent_usage")) + len(starts(engine, "skill_usage")) == len(events)
    done = run_cli(url, "--retention-days", "30")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert "Purged" in done.stdout
    cells = [line.split() for line in done.stdout.splitlines()]
    assert ["agent", "invocations", counted["raw_before"], str(counted["agent_rows"])] in cells
    assert ["rollup", "rows", "kept", "0"] in cells
    remaining = len(starts(engine, "agent_usage")) + len(starts(engine, "skill_usage"))
    assert remaining == len(events) - len(old)


def test_the_purge_command_reads_the_settings(engine: Engine) -> None:
    add_events(engine, *history(datetime.now(UTC)))
    result = run_cli(
        database_url(engine),
        "--json",
        CLAUDE_API_RETENTION_DAYS="20",
        CLAUDE_API_ROLLUP_RETENTION_DAYS="50",
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["agent_rows"] > 0 and printed["rollup_rows"] > 0
    with Session(engine) as session:
        raw_before, rollups_before = purged_before(session)
    assert rollups_before is not None and raw_before == rollups_before + 30 * DAY


def test_the_purge_command_refuses_bad_values(sqlite_url: str) -> None:
    negative = run_cli(sqlite_url, "--retention-days", "-1")
    assert negative.exit_code == 2 and "--retention-days" in negative.stderr
    shorter = run_cli(sqlite_url, "--rollup-retention-days", "5")
    assert shorter.exit_code == 1
    assert "--rollup-retention-days (5) must be 0 (keep forever) or at least" in shorter.stderr
    from_env = run_cli(sqlite_url, CLAUDE_API_RETENTION_DAYS="-3")
    assert from_env.exit_code == 1
    assert "CLAUDE_API_RETENTION_DAYS: Input should be greater than or equal to 0" in (
        from_env.stderr
    )
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # refused before opening


def test_the_help_says_what_purge_does() -> None:
    result = CliRunner().invoke(app, ["analytics", "purge", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "Example: claude-api analytics purge --dry-run" in result.stdout
    for option in ("--dry-run", "--retention-days", "--rollup-retention-days", "--json"):
        assert option in result.stdout


# ---- the server ---------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_server_purges_periodically(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    now = datetime.now(UTC)
    recent = make_event(timestamp=now - DAY)
    add_events(engine, make_event(timestamp=now - 100 * DAY), recent)
    settings = Settings(database_url=sqlite_url, retention_days=30)
    application = create_app(settings, purge_delay=0, purge_interval=0.05)
    try:
        with serve(application) as url:
            wait_until(lambda: len(starts(engine, "agent_usage")) == 1)
            # Another old row, recorded meanwhile, goes at the next run.
            add_events(engine, make_event(timestamp=now - 200 * DAY))
            wait_until(lambda: len(starts(engine, "agent_usage")) == 1)
            assert httpx.get(f"{url}/healthz").status_code == 200
        assert starts(engine, "agent_usage") == [recent.timestamp]
        with Session(engine) as session:
            assert purged_before(session)[0] is not None
    finally:
        engine.dispose()


def test_a_failing_purge_is_logged_and_retried_and_the_server_keeps_serving(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    add_events(engine, make_event(timestamp=datetime.now(UTC) - 100 * DAY))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE retention_state"))  # each purge fails at the end
    settings = Settings(database_url=sqlite_url, retention_days=30)
    application = create_app(settings, purge_delay=0, purge_interval=0.05)
    try:
        with (
            caplog.at_level(logging.ERROR, logger="claude_api.server.app"),
            serve(application) as url,
        ):
            wait_until(lambda: caplog.text.count("purge failed") >= 2)
            assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        engine.dispose()


def test_the_periodic_purge_does_nothing_when_everything_is_kept(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, retention_days=0, rollup_retention_days=0)
    services = Services.start(settings)
    try:
        stopping = asyncio.Event()
        # Returns at once, without waiting for its first run an hour from now.
        asyncio.run(
            asyncio.wait_for(
                purge_periodically(services, delay=3600, interval=3600, stopping=stopping), 5
            )
        )
    finally:
        services.close()


def test_the_periodic_purge_stops_when_asked(sqlite_url: str) -> None:
    services = Services.start(Settings(database_url=sqlite_url, retention_days=30))

    async def main() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(
            purge_periodically(services, delay=3600, interval=3600, stopping=stopping)
        )
        await asyncio.sleep(0.05)
        stopping.set()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
    finally:
        services.close()
