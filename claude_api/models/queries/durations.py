"""How long finished invocations took, as a histogram: counts in buckets of a 1-2-5 series of
seconds (1 ms, 2 ms, 5 ms, 10 ms, ... 5,000,000 s), from the same read as the percentiles.

Over whole hours, days and months the counts come from the rollups' DDSketch bins, each placed
by the duration it reports (within 1% of every duration in it), so a duration within 1% of a
bucket's edge may be counted in the bucket beside it; durations of the raw rows (a range's
edges, or every row when only raw rows answer: `exact`) are placed exactly.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from sqlalchemy.orm import Session

from claude_api.events import Status
from claude_api.models.filters import UsageFilter
from claude_api.models.queries._answer_cache import cached
from claude_api.models.queries._partial_sums import counting_plan
from claude_api.models.queries._percentiles import durations_read
from claude_api.models.queries._statement_shapes import bind
from claude_api.models.sketch import bin_value

# The lower edges of the buckets after the first, [0, 0.001): 1, 2 and 5 times each power of ten.
EDGES: tuple[float, ...] = tuple(
    float(f"{mantissa}e{exponent}") for exponent in range(-3, 7) for mantissa in (1, 2, 5)
)


@dataclass(frozen=True, kw_only=True)
class DurationBucket:
    """Finished invocations whose duration d is min_seconds <= d < max_seconds (no upper
    bound when max_seconds is None)."""

    min_seconds: float
    max_seconds: float | None
    count: int


@dataclass(frozen=True, kw_only=True)
class DurationHistogram:
    """The buckets from the shortest to the longest with a count (empty ones between them
    included), how many durations they count, and whether each was placed exactly."""

    buckets: tuple[DurationBucket, ...]
    measured: int
    exact: bool


@cached(settles=True)
def duration_histogram(session: Session, *, filter: UsageFilter) -> DurationHistogram:
    """The durations of the finished invocations matching `filter` that report one, counted
    per bucket of EDGES. Running invocations have no duration yet: a filter on the running
    status counts nothing."""
    if filter.status is Status.RUNNING:
        return DurationHistogram(buckets=(), measured=0, exact=True)
    shape, values = bind(filter, counting_plan(session, filter))
    read, exact = durations_read(shape, False, False)
    counts = [0] * (len(EDGES) + 1)
    for row in session.execute(read, values):
        if row.bin is None:
            counts[bisect_right(EDGES, row.duration)] += 1
        else:
            counts[bisect_right(EDGES, bin_value(row.bin))] += int(row.count)
    filled = [number for number, count in enumerate(counts) if count]
    if not filled:
        return DurationHistogram(buckets=(), measured=0, exact=exact)
    lower = (0.0, *EDGES)
    upper = (*EDGES, None)
    return DurationHistogram(
        buckets=tuple(
            DurationBucket(min_seconds=lower[n], max_seconds=upper[n], count=counts[n])
            for n in range(filled[0], filled[-1] + 1)
        ),
        measured=sum(counts),
        exact=exact,
    )
