"""A budget's period in its time zone, and a UTC range as the rollup buckets that cover it.

Standard library only, for the PreToolUse hook. The query layer computes the same calendar
edges (`models.queries._calendar`) and the same bucket split (`models.queries._range_split`); tests
hold these to theirs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month")
GRAINS = ("month", "day", "hour")  # coarsest first, as the rollups keep them
SPOKEN = {"day": "today", "week": "this week", "month": "this month"}

# A half-open range [start, end) of UTC instants.
Range = tuple[datetime, datetime]


def period_bounds(now: datetime, period: str, zone: ZoneInfo) -> Range:
    """The day, ISO week (from Monday) or month holding the aware `now` in `zone`, as UTC.

    A day lasts 23 or 25 hours when the zone changes its clocks; a midnight that a zone skips
    begins at the transition itself.
    """
    day = now.astimezone(zone).date()
    if period == "week":
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
    elif period == "month":
        first = day.replace(day=1)
        year, month = divmod(first.year * 12 + first.month, 12)
        following = date(year, month + 1, 1)
    elif period == "day":
        first, following = day, day + timedelta(days=1)
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    return _midnight(first, zone), _midnight(following, zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0: a skipped midnight maps to the transition, a repeated one to its first occurrence.
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def split(start: datetime, end: datetime) -> tuple[dict[str, list[Range]], list[Range]]:
    """[start, end) as the fewest whole UTC months, days and hours (bucket starts per grain,
    coarsest first) and the raw ranges left at its edges (less than an hour on each side)."""
    rollup: dict[str, list[Range]] = {grain: [] for grain in GRAINS}
    raw: list[Range] = []
    _split(start, end, 0, rollup, raw)
    return {grain: _merged(ranges) for grain, ranges in rollup.items() if ranges}, _merged(raw)


def _split(
    start: datetime, end: datetime, level: int, rollup: dict[str, list[Range]], raw: list[Range]
) -> None:
    if start >= end:
        return
    if level == len(GRAINS):
        raw.append((start, end))
        return
    grain = GRAINS[level]
    first, last = _ceil(start, grain), _floor(end, grain)
    if first >= last:
        _split(start, end, level + 1, rollup, raw)
        return
    rollup[grain].append((first, last))
    _split(start, first, level + 1, rollup, raw)
    _split(last, end, level + 1, rollup, raw)


def _floor(moment: datetime, grain: str) -> datetime:
    if grain == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if grain == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil(moment: datetime, grain: str) -> datetime:
    floor = _floor(moment, grain)
    if floor == moment:
        return floor
    if grain == "month":
        year, month = divmod(floor.year * 12 + floor.month, 12)
        return floor.replace(year=year, month=month + 1)
    return floor + (timedelta(days=1) if grain == "day" else timedelta(hours=1))


def _merged(ranges: list[Range]) -> list[Range]:
    ordered = sorted(ranges)
    merged: list[Range] = []
    for start, end in ordered:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
