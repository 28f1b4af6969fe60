"""The UTC buckets the rollups keep (months, days and hours) and time ranges split into them.

Besides UTC days, the measure rollups may keep days that start at another whole UTC hour: the
days of the time zones the dashboard and reports are read in (`claude_api.models.local_days`).
Such a grain is named for the hour its days start at: `day05` holds the days from 05:00 UTC to
05:00 the next day, New York's days in winter.

Standard library only: the PreToolUse hook's spend check (`claude_api.guardrails`) splits a
range exactly as the query layer does, without importing the query layer.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

GRAINS = ("month", "day", "hour")  # coarsest first

# A half-open range [start, end) of UTC instants; None is unbounded on that side.
Interval = tuple[datetime | None, datetime | None]


def day_grain(start_hour: int) -> str:
    """The grain of the days that start at `start_hour`:00 UTC (`day` for midnight)."""
    if not 0 <= start_hour < 24:
        raise ValueError(f"a day starts at an hour from 0 to 23, not {start_hour}")
    return "day" if start_hour == 0 else f"day{start_hour:02d}"


def day_start_hour(grain: str) -> int | None:
    """The UTC hour the days of `grain` start at (0 for `day`); None for another grain."""
    if grain == "day":
        return 0
    if len(grain) == 5 and grain.startswith("day") and grain[3:].isdigit():
        return int(grain[3:])
    return None


def split(
    ranges: Iterable[Interval], day_starts: Collection[int] = ()
) -> tuple[dict[str, list[Interval]], list[Interval]]:
    """Disjoint ranges as the fewest whole buckets (their start instants per grain, coarsest
    first) and the raw ranges left at their edges (less than an hour on each side), each range
    split on its own (no bucket crosses a range's edge), then merged.

    `day_starts` are the other UTC hours whose days may be read (`day_grain`): a range from one
    such hour to another, a local day, is then one bucket rather than 24 hours."""
    rollup: dict[str, list[Interval]] = {grain: [] for grain in GRAINS}
    raw: list[Interval] = []
    for since, until in ranges:
        _split(since, until, 0, rollup, raw, tuple(day_starts))
    found = {grain: merged(intervals) for grain, intervals in rollup.items() if intervals}
    return found, merged(raw)


def _split(
    since: datetime | None,
    until: datetime | None,
    level: int,
    rollup: dict[str, list[Interval]],
    raw: list[Interval],
    day_starts: tuple[int, ...] = (),
) -> None:
    if since is not None and until is not None and since >= until:
        return
    if level == len(GRAINS):
        raw.append((since, until))
        return
    grain = GRAINS[level]
    if grain == "day" and day_starts and since is not None and until is not None:
        grain = _fewest_buckets_day(since, until, day_starts)
    try:
        start = None if since is None else ceil(since, grain)
        end = None if until is None else floor(until, grain)
    except (OverflowError, ValueError):  # next to the ends of the datetime range
        _split(since, until, level + 1, rollup, raw, day_starts)
        return
    if start is not None and end is not None and start >= end:
        _split(since, until, level + 1, rollup, raw, day_starts)
        return
    rollup.setdefault(grain, []).append((start, end))
    if since is not None and start is not None:
        _split(since, start, level + 1, rollup, raw, day_starts)
    if until is not None and end is not None:
        _split(end, until, level + 1, rollup, raw, day_starts)


def _fewest_buckets_day(since: datetime, until: datetime, day_starts: tuple[int, ...]) -> str:
    """The day grain, UTC or starting at one of `day_starts`, that splits [since, until) into
    the fewest buckets (its whole days and the hours at its edges); UTC days on a tie."""
    # Whole days of a kept grain, as a local day is: from one of its starts to another.
    hour = since.hour
    if (
        hour in day_starts
        and until.hour == hour
        and since == floor(since, "hour")
        and until == floor(until, "hour")
        and until - since >= _DAY
    ):
        return day_grain(hour)
    best, fewest = "day", math.inf
    for grain in ("day", *(day_grain(hour) for hour in day_starts)):
        try:
            start, end = ceil(since, grain), floor(until, grain)
        except (OverflowError, ValueError):  # next to the ends of the datetime range
            continue
        if start >= end:
            continue
        count = (end - start) / _DAY + math.ceil((start - since) / _HOUR)
        count += math.ceil((until - end) / _HOUR)
        if count < fewest:
            best, fewest = grain, count
    return best


_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)


def floor(moment: datetime, grain: str) -> datetime:
    """The start of the `grain` bucket holding the UTC `moment`."""
    start_hour = day_start_hour(grain)
    if start_hour:
        shift = timedelta(hours=start_hour)
        return floor(moment - shift, "day") + shift
    if grain == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if grain == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil(moment: datetime, grain: str) -> datetime:
    """The start of the first `grain` bucket at or after the UTC `moment`."""
    start = floor(moment, grain)
    if start == moment:
        return start
    if grain == "month":
        year, month = divmod(start.year * 12 + start.month, 12)
        return start.replace(year=year, month=month + 1)
    return start + (_HOUR if grain == "hour" else _DAY)


def merged(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with touching intervals joined."""
    if not intervals:
        return []
    ordered = sorted(intervals, key=lambda piece: (piece[0] is not None, piece[0] or 0))
    joined = [ordered[0]]
    for start, end in ordered[1:]:
        last_start, last_end = joined[-1]
        if last_end is not None and start == last_end:
            joined[-1] = (last_start, end)
        else:
            joined.append((start, end))
    return joined
