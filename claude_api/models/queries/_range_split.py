"""Which rows answer a time range: whole UTC months, days and hours from the rollups, and the
raw rows only for what is left at the edges (less than an hour on each side).

A range cut into calendar buckets (a history in any time zone) is split bucket by bucket, so no
piece crosses a bucket's edge; local midnights fall on whole hours in nearly every zone, so
almost all of a history comes from the rollups.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from claude_api import buckets
from claude_api.buckets import GRAINS, Interval, ceil, floor, merged

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
    """A range as rollup intervals per grain (of bucket start instants) and raw intervals;
    `less` holds buckets counted in `rollup` that lie outside the range, to subtract (only
    pieces made by `split_counts` have them)."""

    rollup: dict[str, list[Interval]] = field(default_factory=dict)
    raw: list[Interval] = field(default_factory=list)
    less: dict[str, list[Interval]] = field(default_factory=dict)

    @property
    def uses_rollups(self) -> bool:
        return any(self.rollup.values())


def raw_pieces(since: datetime | None, until: datetime | None) -> Pieces:
    """The whole range from the raw rows."""
    return Pieces(raw=[(since, until)])


def split_range(since: datetime | None, until: datetime | None) -> Pieces:
    """[since, until) as the fewest rollup buckets, coarsest first, plus raw edges."""
    return split_ranges([(since, until)])


def split_ranges(ranges: Iterable[Interval], day_starts: Collection[int] = ()) -> Pieces:
    """Disjoint ranges split one by one (no piece crosses a range's edge), then merged; days
    that start at one of the UTC hours `day_starts` may be read whole (only the measure
    rollups keep them: `claude_api.models.local_days`)."""
    rollup, raw = buckets.split(ranges, day_starts)
    return Pieces(rollup=rollup, raw=raw)


# What reading one bucket of each grain costs, in hour buckets: a coarser bucket holds more
# (name, project) keys than a finer one, though far fewer than all the finer buckets it spans.
_BUCKET_COST = {"month": 3.0, "day": 1.5, "hour": 1.0}
_SPAN = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
# A cover: its cost, and its signed pieces (+1 or -1, grain or "raw", interval).
Cover = tuple[float, list[tuple[int, str, Interval]]]
_NONE: Cover = (float("inf"), [])


def split_counts(
    since: datetime | None, until: datetime | None, now: datetime | None = None
) -> Pieces:
    """[since, until) for sums of counts, which may subtract: like `split_range`, except that a
    range's edge may read the whole month (or day) it falls in less the finer buckets outside
    the range, when that reads fewer rows than the finer buckets inside it (a range starting
    30 days back reads one month and three days, not 27 days; the 30 days from 7 November to
    7 December read November less six days, and six days of December; most of a month reads
    the month less what lies outside on each side). Raw rows are never subtracted.

    Buckets that start after `now` hold nothing yet, so reading them costs nothing: a range
    ending tomorrow may read this month less the days still to come. They are read and
    subtracted all the same, so rows stamped ahead of the clock are counted exactly.
    """
    try:
        found = _Covers(now).counted(since, until, 0)
    except (OverflowError, ValueError):  # next to the ends of the datetime range
        found = _NONE
    if math.isinf(found[0]):
        return split_range(since, until)
    grains: dict[str, dict[int, list[Interval]]] = {}
    raw: list[Interval] = []
    for sign, grain, interval in found[1]:
        if grain == "raw":
            raw.append(interval)
        else:
            grains.setdefault(grain, {1: [], -1: []})[sign].append(interval)
    return Pieces(
        rollup={g: merged(by_sign[1]) for g, by_sign in grains.items() if by_sign[1]},
        raw=merged(raw),
        less={g: merged(by_sign[-1]) for g, by_sign in grains.items() if by_sign[-1]},
    )


@dataclass(frozen=True)
class _Covers:
    """The cheapest covers of ranges, buckets starting after `now` (None: never) costing
    nothing."""

    now: datetime | None

    def counted(self, since: datetime | None, until: datetime | None, level: int) -> Cover:
        if since is not None and until is not None and since >= until:
            return 0.0, []
        if level == len(GRAINS):
            return 0.0, [(1, "raw", (since, until))]
        grain = GRAINS[level]
        start = None if since is None else ceil(since, grain)
        end = None if until is None else floor(until, grain)
        if start is not None and end is not None and start >= end:
            finer = self.counted(since, until, level + 1)
            if start > end:  # both ends in one bucket of this grain ("the last 7 days")
                # It may be read whole less what lies outside the range on each side: the
                # current month less its first day and the days still to come, say.
                first, last = floor(since, grain), start
                before = self.right(since, level, -1, flipped=True)
                after = self.left(until, level, -1, flipped=True)
                whole: Cover = (
                    self.cost(grain, first, last) + before[0] + after[0],
                    [(1, grain, (first, last)), *before[1], *after[1]],
                )
                return min(finer, whole, key=lambda cover: cover[0])
            # The range crosses one edge of this grain ("the last 30 days" across a month's
            # end): each side may read its whole bucket less what lies outside the range.
            left = self.left(since, level, 1, flipped=False)
            right = self.right(until, level, 1, flipped=False)
            return min(finer, (left[0] + right[0], left[1] + right[1]), key=lambda cover: cover[0])
        cost, pieces = self.cost(grain, start, end), [(1, grain, (start, end))]
        for edge in (
            self.left(since, level, 1, flipped=False) if since is not None else (0.0, []),
            self.right(until, level, 1, flipped=False) if until is not None else (0.0, []),
        ):
            cost, pieces = cost + edge[0], pieces + edge[1]
        return cost, pieces

    def left(self, moment: datetime, level: int, sign: int, *, flipped: bool) -> Cover:
        """`sign` times [moment, the end of the `level` bucket holding it)."""
        grain = GRAINS[level]
        first, end = floor(moment, grain), ceil(moment, grain)
        if first == moment:
            return 0.0, []
        inside = self.finer_inside(moment, end, level, sign, left=True)
        if flipped:
            return inside
        rest = self.right(moment, level, -sign, flipped=True)
        whole: Cover = (
            self.cost(grain, first, end) + rest[0],
            [(sign, grain, (first, end)), *rest[1]],
        )
        return min(inside, whole, key=lambda cover: cover[0])

    def right(self, moment: datetime, level: int, sign: int, *, flipped: bool) -> Cover:
        """`sign` times [the start of the `level` bucket holding `moment`, moment)."""
        grain = GRAINS[level]
        first = floor(moment, grain)
        if first == moment:
            return 0.0, []
        inside = self.finer_inside(first, moment, level, sign, left=False)
        if flipped:
            return inside
        end = ceil(moment, grain)
        rest = self.left(moment, level, -sign, flipped=True)
        whole: Cover = (
            self.cost(grain, first, end) + rest[0],
            [(sign, grain, (first, end)), *rest[1]],
        )
        return min(inside, whole, key=lambda cover: cover[0])

    def finer_inside(
        self, start: datetime, end: datetime, level: int, sign: int, *, left: bool
    ) -> Cover:
        """`sign` times [start, end) from the next finer grain, where `start` (left) or `end` is
        the moment inside a finer bucket and the other end is on one of its edges."""
        if level + 1 == len(GRAINS):
            return (0.0, [(1, "raw", (start, end))]) if sign > 0 else _NONE
        finer = GRAINS[level + 1]
        moment = start if left else end
        edge = ceil(moment, finer) if left else floor(moment, finer)
        whole = (edge, end) if left else (start, edge)
        pieces = [(sign, finer, whole)] if whole[0] != whole[1] else []
        rest = (
            self.left(moment, level + 1, sign, flipped=False)
            if left
            else self.right(moment, level + 1, sign, flipped=False)
        )
        return self.cost(finer, *whole) + rest[0], pieces + rest[1]

    def cost(self, grain: str, start: datetime | None, end: datetime | None) -> float:
        """What reading the `grain` buckets of [start, end) costs: those that start before
        `now`."""
        if self.now is not None and start is not None and end is not None:
            end = max(start, min(end, ceil(self.now, grain)))
        return _BUCKET_COST[grain] * _buckets(start, end, grain)


def _buckets(start: datetime | None, end: datetime | None, grain: str) -> float:
    """How many `grain` buckets [start, end) holds (one when unbounded: the same in every
    cover compared)."""
    if start is None or end is None:
        return 1.0
    if grain == "month":
        return float((end.year - start.year) * 12 + end.month - start.month)
    return (end - start) / _SPAN[grain]
