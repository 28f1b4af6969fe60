"""Duration percentiles from DDSketch bins: mergeable, with a guaranteed relative error.

A duration d > 0 falls in bin ceil(ln(d) / ln(gamma)) of DDSketch's logarithmic mapping (the
`ddsketch` library), gamma = (1 + a) / (1 - a) for the relative accuracy a = 1%. Bins of any
set of rollup rows merge by adding their counts, so percentiles over any range and any filter
come from summed bins. The value reported for a bin is DDSketch's: every duration in the bin is
within a of it, so a percentile from bins is within 1% of the exact nearest-rank percentile
(the rank is computed exactly from the counts; only the value within the bin is approximate).
Durations of 1 ns or less share one bin that reports 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
ZERO_BIN = -(2**31)
SMALLEST_BINNED = 1e-9
# ln(d) * _MULTIPLIER is the mapping's log base gamma, as SQL computes it.
_MULTIPLIER = 1 / math.log(MAPPING.gamma)


def bin_of(duration: float) -> int:
    """The bin holding `duration` (seconds, >= 0)."""
    if duration <= SMALLEST_BINNED:
        return ZERO_BIN
    return math.ceil(math.log(duration) * _MULTIPLIER)


def bin_sql(column: str) -> str:
    """The SQL expression of `bin_of` over a column, for SQLite (3.35+) and PostgreSQL alike."""
    return (
        f"CASE WHEN {column} > {SMALLEST_BINNED!r} "
        f"THEN CAST(ceil(ln({column}) * {_MULTIPLIER!r}) AS INTEGER) ELSE {ZERO_BIN} END"
    )


def bin_value(bin: int) -> float:
    """The duration a bin reports: within RELATIVE_ACCURACY of every duration in it."""
    return 0.0 if bin == ZERO_BIN else MAPPING.value(bin)


def nearest_rank(counts: dict[int, int], percents: Iterable[int]) -> dict[int, float | None]:
    """The nearest-rank p-th percentile of the durations counted in `counts` (bin -> count),
    for each p in `percents`: the value of the bin holding the k-th smallest duration,
    k = ceil(p * n / 100). None when nothing is counted."""
    total = sum(counts.values())
    if total == 0:
        return {p: None for p in percents}
    ordered = sorted(counts.items())
    result: dict[int, float | None] = {}
    for p in percents:
        rank = max(1, -(-p * total // 100))
        seen = 0
        for bin, count in ordered:
            seen += count
            if seen >= rank:
                result[p] = bin_value(bin)
                break
    return result
