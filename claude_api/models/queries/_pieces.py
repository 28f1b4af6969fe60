"""Which rows answer a time range: whole UTC months, days and hours from the rollups, and the
raw rows only for what is left at the edges (less than an hour on each side).

A range cut into calendar buckets (a history in any time zone) is split bucket by bucket, so no
piece crosses a bucket's edge; local midnights fall on whole hours in nearly every zone, so
almost all of a history comes from the rollups.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from claude_api.models.rollups import GRAINS

# A half-open range [start, end) of instants; None is unbounded on that side.
Interval = tuple[datetime | None, datetime | None]

_RAW_ONLY: ContextVar[bool] = ContextVar("raw_only", default=False)


@contextmanager
def reading_raw_rows() -> Iterator[None]:
    """Within this block every query computes from the raw rows only, as if there were no
    rollups, and percentiles are exact: the reference the rollups are tested and measured
    against."""
    token = _RAW_ONLY.set(True)
    try:
        yield
    finally:
        _RAW_ONLY.reset(token)


def raw_only() -> bool:
    """Whether queries must ignore the rollups (inside `reading_raw_rows`)."""
    return _RAW_ONLY.get()


@dataclass(frozen=True)
class Pieces:
    """A range as rollup intervals per grain (of bucket start instants) and raw intervals."""

    rollup: dict[str, list[Interval]] = field(default_factory=dict)
    raw: list[Interval] = field(default_factory=list)

    @property
    def uses_rollups(self) -> bool:
        return any(self.rollup.values())


def raw_pieces(since: datetime | None, until: datetime | None) -> Pieces:
    """The whole range from the raw rows."""
    return Pieces(raw=[(since, until)])


def split_range(since: datetime | None, until: datetime | None) -> Pieces:
    """[since, until) as the fewest rollup buckets, coarsest first, plus raw edges."""
    return split_ranges([(since, until)])


def split_ranges(ranges: Iterable[Interval]) -> Pieces:
    """Disjoint ranges split one by one (no piece crosses a range's edge), then merged."""
    rollup: dict[str, list[Interval]] = {grain: [] for grain in GRAINS}
    raw: list[Interval] = []
    for since, until in ranges:
        _split(since, until, 0, rollup, raw)
    return Pieces(
        rollup={grain: _merged(intervals) for grain, intervals in rollup.items() if intervals},
        raw=_merged(raw),
    )


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
        start = None if since is None else _ceil(since, grain)
        end = None if until is None else _floor(until, grain)
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


def _merged(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with touching intervals joined."""
    if not intervals:
        return []
    ordered = sorted(intervals, key=lambda piece: (piece[0] is not None, piece[0] or 0))
    merged = [ordered[0]]
    for start, end in ordered[1:]:
        last_start, last_end = merged[-1]
        if last_end is not None and start == last_end:
            merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return merged
