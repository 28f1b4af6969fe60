"""The days of the dashboard's time zones, kept as daily rollups besides UTC days.

A history by New York days reads each local day as one row of the grain `day05` (`day04` in
summer) rather than 24 hourly rows, and answers exactly as the raw rows do: whether the rows
were written before the days were kept (filled from the hours) or after (folded by each write),
late, replayed or finished after they started.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api import buckets
from claude_api.config import Settings
from claude_api.events import Kind, Status
from claude_api.models import local_days, queries
from claude_api.models.filters import Period, UsageFilter
from claude_api.models.local_days import keep_days, keep_local_days, start_hours
from claude_api.models.queries._range_split import split_ranges
from claude_api.models.queries.histories import usage_by_period_per_name
from claude_api.models.retention import purge
from claude_api.models.rollup_tables import UsageRollup
from claude_api.models.rollups import MEASURE_TABLES
from claude_api.server.services import Services
from tests.factories import add_events, make_event

NEW_YORK = ZoneInfo("America/New_York")
# Ten New York days around the end of summer time (1 November 2026, a 25-hour day).
SINCE = datetime(2026, 10, 27, tzinfo=NEW_YORK).astimezone(UTC)
UNTIL = datetime(2026, 11, 6, tzinfo=NEW_YORK).astimezone(UTC)
NAMES = ("alpha", "beta")


def days_in(zone: ZoneInfo, first: datetime, count: int) -> list[tuple[datetime, datetime]]:
    days = [first.astimezone(zone).date() + timedelta(days=number) for number in range(count + 1)]
    midnights = [
        datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC) for day in days
    ]
    return list(itertools.pairwise(midnights))


def test_new_york_days_split_into_whole_local_days_where_they_are_kept() -> None:
    days = days_in(NEW_YORK, SINCE, 10)
    hours = timedelta(hours=1)
    rollup, raw = buckets.split(days, day_starts=(4, 5))
    assert raw == []
    # Summer days start at 04:00 UTC, winter days at 05:00; 1 November runs from 04:00 to
    # 05:00 the next day: a day of summer time and one hour.
    assert rollup == {
        "day04": [(days[0][0], days[5][1] - hours)],
        "hour": [(days[5][1] - hours, days[5][1])],
        "day05": [(days[6][0], days[-1][1])],
    }
    # Without them, each local day is 24 hours: it holds no UTC day.
    assert set(buckets.split(days)[0]) == {"hour"}
    # A range from UTC midnight to UTC midnight keeps UTC days, whatever else is kept.
    utc = [(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC))]
    assert buckets.split(utc, day_starts=(4, 5))[0] == {"day": utc}


def test_the_zones_days_start_at_their_utc_hours() -> None:
    assert start_hours(["America/New_York"]) == {4, 5}
    assert start_hours(["Europe/Paris"]) == {22, 23}
    assert start_hours(["UTC", "Asia/Kolkata"]) == set()  # midnight, and half an hour
    with pytest.raises(ZoneInfoNotFoundError):
        start_hours(["Mars/Olympus_Mons"])


def spread_events(count: int, offset: timedelta = timedelta()) -> list:
    """Finished, failed and running invocations every 61 minutes over the ten days (and a day
    on each side), of two names, projects and models, some without a cost."""
    start = SINCE - timedelta(days=1) + offset
    return [
        make_event(
            name=NAMES[number % 2],
            kind=Kind.SKILL if number % 5 == 0 else Kind.AGENT,
            task_id=f"task-{number % 7}",
            project_id=("web", None)[number % 2],
            model=("claude-sonnet-4-5", "claude-haiku-4-5")[number % 3 % 2],
            timestamp=start + number * timedelta(minutes=61),
            status=(Status.COMPLETED, Status.FAILED, Status.RUNNING)[number % 3],
            cost_usd=None if number % 4 == 0 else number / 64,
        )
        for number in range(count)
    ]


def histories(engine: Engine) -> dict[str, object]:
    """Histories by New York and Paris days, in every shape the dashboard asks for."""
    ranged = UsageFilter(since=SINCE, until=UNTIL, tz="America/New_York")
    paris = ranged.replace(tz="Europe/Paris")
    asked = {
        "all": lambda s: queries.usage_by_period(s, filter=ranged, period=Period.DAY),
        "Paris": lambda s: queries.usage_by_period(s, filter=paris, period=Period.DAY),
        "agent": lambda s: queries.usage_by_period(
            s, filter=ranged.replace(kind=Kind.AGENT, name="alpha"), period=Period.DAY
        ),
        "project": lambda s: queries.usage_by_period(
            s, filter=ranged.replace(project_id="web"), period=Period.DAY
        ),
        "model": lambda s: queries.usage_by_period(
            s, filter=ranged.replace(model="claude-haiku-4-5"), period=Period.DAY
        ),
        "weeks": lambda s: queries.usage_by_period(s, filter=ranged, period=Period.WEEK),
        "trend lines": lambda s: usage_by_period_per_name(
            s, filter=ranged.replace(kind=Kind.AGENT), period=Period.DAY, named=list(NAMES)
        ),
    }
    with Session(engine) as session, queries.computing_afresh():
        return {name: question(session) for name, question in asked.items()}


def raw_histories(engine: Engine) -> dict[str, object]:
    with queries.reading_raw_rows():
        return histories(engine)


def kept_days(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT grain, sum(invocations) FROM usage_name_rollup "
                "WHERE grain NOT IN ('hour', 'month') GROUP BY grain"
            )
        )
        return {grain: int(total) for grain, total in rows}


def test_local_days_answer_as_the_raw_rows(engine: Engine) -> None:
    early = spread_events(150)
    add_events(engine, *early)
    assert kept_days(engine).keys() == {"day"}
    added = keep_days(engine, start_hours(["America/New_York", "Europe/Paris"]))
    assert added == ["day04", "day05", "day22", "day23"]
    assert keep_days(engine, start_hours(["America/New_York"])) == []  # kept already
    # Written after: new invocations, late ones among the first, the finish of running ones
    # and a replay.
    late = spread_events(150, offset=timedelta(minutes=17))
    finishes = [
        event.model_copy(update={"status": Status.COMPLETED, "duration_seconds": 3.0})
        for event in early
        if event.status is Status.RUNNING
    ]
    add_events(engine, *late, *finishes)
    add_events(engine, *late[:20])
    # Every finished invocation is in each kind of day once.
    days = kept_days(engine)
    assert set(days) == {"day", "day04", "day05", "day22", "day23"}
    assert len(set(days.values())) == 1, days
    rolled, raw = histories(engine), raw_histories(engine)
    for name in rolled:
        assert rolled[name] == raw[name], name
    assert sum(bucket.invocations for bucket in rolled["all"].buckets) > 250


def test_a_history_by_local_days_reads_the_days_kept(engine: Engine) -> None:
    """The check above can fail: a kept day changed by hand changes the history."""
    add_events(engine, *spread_events(300))
    keep_days(engine, start_hours(["America/New_York"]))
    before = histories(engine)["agent"]
    with engine.begin() as connection:
        for table in MEASURE_TABLES:
            connection.execute(
                sa.text(
                    f"UPDATE {table} SET invocations = invocations + 1000 WHERE grain = 'day05'"
                )
            )
    after = histories(engine)["agent"]
    assert [b.invocations for b in after.buckets[:5]] == [b.invocations for b in before.buckets[:5]]
    assert all(
        changed.invocations == kept.invocations + 1000
        for changed, kept in zip(after.buckets[6:], before.buckets[6:], strict=True)
    )


def test_days_kept_while_invocations_are_written_miss_none(engine: Engine) -> None:
    """Writers running while a day grain is added: every invocation is in its days once."""
    add_events(engine, *spread_events(100))
    stop = threading.Event()
    written = []

    def write() -> None:
        number = 0
        while not stop.is_set() and number < 400:
            event = make_event(
                event_id=uuid.uuid4(),
                name=NAMES[number % 2],
                timestamp=SINCE + timedelta(minutes=13 * number),
            )
            add_events(engine, event)
            written.append(event)
            number += 1

    writers = [threading.Thread(target=write) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        while len(written) < 10:
            stop.wait(0.01)
        keep_days(engine, start_hours(["America/New_York"]))
        while len(written) < 60:
            stop.wait(0.01)
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    days = kept_days(engine)
    assert days["day04"] == days["day05"] == days["day"], days


def test_purging_rollups_purges_the_local_days_that_ended(engine: Engine) -> None:
    add_events(engine, *spread_events(300))
    keep_days(engine, start_hours(["America/New_York"]))
    now = datetime(2026, 11, 4, 12, tzinfo=UTC)
    result = purge(engine, raw_retention_days=3, rollup_retention_days=3, now=now)
    assert result.rollups_before == datetime(2026, 11, 1, tzinfo=UTC)
    table = UsageRollup.__table__
    with engine.connect() as connection:
        first = dict(
            connection.execute(
                sa.select(table.c.grain, sa.func.min(table.c.bucket_start))
                .where(table.c.grain.in_(["day04", "day05"]))
                .group_by(table.c.grain)
            ).all()
        )
    # Every write goes to both grains. The days that end after the cutoff stay: from
    # 31 October 04:00 and 05:00 UTC.
    assert first == {
        "day04": datetime(2026, 10, 31, 4, tzinfo=UTC),
        "day05": datetime(2026, 10, 31, 5, tzinfo=UTC),
    }


def test_the_server_keeps_the_days_of_its_time_zones(database_url: str) -> None:
    settings = Settings(database_url=database_url, time_zones="Europe/Paris, America/New_York")
    services = Services.start(settings)
    try:
        with services.engine.connect() as connection:
            grains = connection.execute(
                sa.text("SELECT grain FROM rollup_day_starts ORDER BY grain")
            ).scalars()
            assert list(grains) == ["day04", "day05", "day22", "day23"]
        assert keep_local_days(services.engine, ["America/New_York"]) == []
    finally:
        services.close()


def test_an_unknown_time_zone_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="CLAUDE_API_TIME_ZONES: 'Mars/Olympus' is not a time"):
        Settings(time_zones="UTC, Mars/Olympus")


def test_the_query_layer_reads_whole_local_days_as_one_piece() -> None:
    days = days_in(NEW_YORK, SINCE, 3)
    assert split_ranges(days, day_starts=(4,)).rollup == {"day04": [(days[0][0], days[-1][1])]}


def test_a_long_write_makes_the_server_start_without_adding_days(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL: a writer that holds on (a large import under way) does not hold the server's
    start for long; the days are added at the next start."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers take turns: the start waits for the write lock")
    monkeypatch.setattr(local_days, "LOCK_TIMEOUT_SECONDS", 1)
    with engine.connect() as writer:
        writer.execute(sa.text("LOCK TABLE agent_usage IN ROW EXCLUSIVE MODE"))
        assert keep_local_days(engine, ["America/New_York"]) == []
        assert "are not kept as daily rollups" in caplog.text
        writer.rollback()
    assert keep_local_days(engine, ["America/New_York"]) == ["day04", "day05"]


def test_db_upgrade_keeps_the_days_of_the_time_zones_set(tmp_path: Path) -> None:
    """`claude-api db upgrade`, run as a user would, adds the days of CLAUDE_API_TIME_ZONES;
    run again, it has nothing to add."""
    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_API_")}
    env |= {"HOME": str(tmp_path), "CLAUDE_API_DATABASE_URL": url}
    env["CLAUDE_API_TIME_ZONES"] = "America/New_York"

    def upgrade() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "claude_api.client", "db", "upgrade"],
            capture_output=True, text=True, env=env, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout + done.stderr

    assert "now keeping local days as daily rollups: day04, day05" in upgrade()
    assert "now keeping local days" not in upgrade()
    env["CLAUDE_API_TIME_ZONES"] = "Mars/Olympus"
    refused = subprocess.run(
        [sys.executable, "-m", "claude_api.client", "db", "upgrade"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "CLAUDE_API_TIME_ZONES: 'Mars/Olympus' is not a time zone" in refused.stderr
