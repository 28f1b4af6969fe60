"""The UTC buckets the rollups keep (months, days and hours) and time ranges split into them.

Standard library only: the PreToolUse hook's spend check (`claude_api.guardrails`) splits a
range exactly as the query layer does, without importing the query layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

GRAINS = ("month", "day", "hour")  # coarsest first

# A half-open range [start, end) of UTC instants; None is unbounded on that side.
Interval = tuple[datetime | None, datetime | None]


def split(ranges: Iterable[Interval]) -> tuple[dict[str, list[Interval]], list[Interval]]:
    """Disjoint ranges as the fewest whole buckets (their start instants per grain, coarsest
    first) and the raw ranges left at their edges (less than an hour on each side), each range
    split on its own (no bucket crosses a range's edge), then merged."""
    rollup: dict[str, list[Interval]] = {grain: [] for grain in GRAINS}
    raw: list[Interval] = []
    for since, until in ranges:
        _split(since, until, 0, rollup, raw)
    found = {grain: merged(intervals) for grain, intervals in rollup.items() if intervals}
    return found, merged(raw)


def _split(
    since: datetime | None,
    until: datetime | None,
    level: int,
    rollup: dict[str, list[Interval]],
    raw: list[Interval],
) -> None:
    if since is not None and until is not None and since >= until:
        return
    if level == len(GRAINS):
        raw.append((since, until))
        return
    grain = GRAINS[level]
    try:
        start = None if since is None else ceil(since, grain)
        end = None if until is None else floor(until, grain)
    except (OverflowError, ValueError):  # next to the ends of the datetime range
        _split(since, until, level + 1, rollup, raw)
        return
    if start is not None and end is not None and start >= end:
        _split(since, until, level + 1, rollup, raw)
        return
    rollup[grain].append((start, end))
    if since is not None and start is not None:
        _split(since, start, level + 1, rollup, raw)
    if until is not None and end is not None:
        _split(end, until, level + 1, rollup, raw)


def floor(moment: datetime, grain: str) -> datetime:
    """The start of the `grain` bucket holding the UTC `moment`."""
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
    return start + (timedelta(days=1) if grain == "day" else timedelta(hours=1))


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
