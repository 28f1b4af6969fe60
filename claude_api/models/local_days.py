"""The days of the time zones the dashboard and reports are read in, kept as daily rollups.

The rollups keep UTC days, but a day in New York runs from 05:00 UTC to 05:00 the next day
(04:00 in summer): without more, a history by New York days sums 24 hourly rollup rows per day
and name. The measure rollups may therefore also keep days that start at other whole UTC hours
(`claude_api.buckets.day_grain`). The grains kept are listed in `rollup_day_starts`, and every
write folds its rows into each of them in its own transaction (`rollups.fold`); adding a grain
fills its days from the hourly rollups, with writers held back meanwhile, so a listed grain is
always complete. Readers split a history's local days into these days where they fit.

A zone whose days start at a half or quarter hour (India, Nepal, parts of Australia) is still
answered exactly, from hourly rollups and raw rows at its edges, only not as fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claude_api import buckets
from claude_api.models import data_version
from claude_api.models.db import write_engine
from claude_api.models.rollup_tables import RollupDayStart
from claude_api.models.rollups import fill_day_grain
from claude_api.models.tables import USAGE_TABLES

logger = logging.getLogger(__name__)

_TABLE = RollupDayStart.__table__
LOCK_TIMEOUT_SECONDS = 10  # PostgreSQL: how long adding a grain waits for writers under way


def start_hours(zones: Iterable[str]) -> set[int]:
    """The UTC hours (1 to 23) at which the days of `zones` (IANA names) start, in standard
    and in summer time, over the last and the next two years; zones whose days start at a
    half or quarter hour add none.

    Raises ZoneInfoNotFoundError for an unknown zone."""
    hours: set[int] = set()
    now = datetime.now(UTC)
    for name in zones:
        zone = ZoneInfo(name)
        for month in range(-12, 25):
            offset = (now + timedelta(days=30.5 * month)).astimezone(zone).utcoffset()
            if offset is not None:
                hours |= _start_hour(offset)
    return hours


def machine_start_hours() -> set[int]:
    """The UTC hours at which this machine's local days start (standard and summer time)."""
    offsets = [time.timezone] + ([time.altzone] if time.daylight else [])
    return {hour for west in offsets for hour in _start_hour(timedelta(seconds=-west))}


def _start_hour(offset: timedelta) -> set[int]:
    # Local midnight is UTC midnight less the offset: 05:00 UTC for UTC-5.
    seconds = int(-offset.total_seconds()) % 86400
    hour, rest = divmod(seconds, 3600)
    return {hour} if rest == 0 and hour != 0 else set()


def day_starts(session: Session) -> tuple[int, ...]:
    """The UTC hours, besides midnight, whose days the measure rollups keep."""
    return tuple(
        session.execute(sa.select(_TABLE.c.start_hour).order_by(_TABLE.c.start_hour)).scalars()
    )


def keep_days(engine: Engine, hours: Iterable[int]) -> list[str]:
    """Have the measure rollups keep the days that start at each of `hours` UTC from now on,
    filling those not kept yet from the hourly rollups; returns the grains added.

    While a grain is filled no invocation is written (on PostgreSQL the writers wait, on SQLite
    they take turns anyway), so it misses none."""
    wanted = sorted({hour for hour in hours if hour != 0})
    for hour in wanted:
        buckets.day_grain(hour)  # raises ValueError outside 0-23
    # Read first, outside a write transaction: the usual start finds every grain kept and takes
    # no write lock, so a read-only database still opens.
    with Session(engine) as session:
        missing = [hour for hour in wanted if hour not in day_starts(session)]
    if not missing:
        return []
    added = []
    with write_engine(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            # Writers finish first, and none starts until the new days are filled; a writer
            # that holds on for long (a large import) makes this give up rather than wait.
            tables = ", ".join(table.__tablename__ for table in USAGE_TABLES.values())
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
            connection.exec_driver_sql(f"LOCK TABLE {tables} IN SHARE MODE")
        kept = set(connection.execute(sa.select(_TABLE.c.start_hour)).scalars())
        for hour in missing:
            if hour in kept:  # another process added it meanwhile
                continue
            grain = buckets.day_grain(hour)
            connection.execute(_TABLE.insert().values(grain=grain, start_hour=hour))
            fill_day_grain(connection, hour)
            added.append(grain)
        if added:
            data_version.changed(connection)
    if added:
        logger.info("the rollups now keep the days starting at %s", ", ".join(added))
    return added


def keep_local_days(engine: Engine, zones: Iterable[str]) -> list[str]:
    """`keep_days` for the days of `zones` (this machine's when there are none), as the server
    does when it starts. A database it cannot write to (read-only, or held by a long write) is
    left as it is, with a warning: answers stay exact, local days are read from hours, and the
    next start tries again."""
    listed = list(zones)
    hours = start_hours(listed) if listed else machine_start_hours()
    try:
        return keep_days(engine, hours)
    except sa.exc.DBAPIError as error:
        zones_named = ", ".join(listed) or "this machine's time zone"
        logger.warning("the days of %s are not kept as daily rollups: %s", zones_named, error)
        return []
