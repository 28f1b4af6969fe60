"""Duration percentiles (p50, p95, p99) of finished invocations, nearest-rank.

Over whole buckets they come from the rollups' DDSketch bins, merged by summing counts, so the
cost does not grow with the number of invocations; durations of the raw edges are added to the
same bins. Every such percentile is within 1% of the exact one (`claude_api.models.sketch`).
The bins are kept per (kind, name, project): percentiles of one model or one status, like every
question that reads raw rows only (one task, a range shorter than an hour, or inside
`reading_raw_rows`), are exact and computed from the raw rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.models.events import Status
from claude_api.models.filters import UsageFilter
from claude_api.models.queries._binding import Shape, bind, statements
from claude_api.models.queries._parts import FINISHED, plan, rollup_scans
from claude_api.models.queries._pieces import raw_pieces
from claude_api.models.queries._source import ROW, usage_rows
from claude_api.models.rollup_tables import DurationBin, KindDurationBin, NameDurationBin
from claude_api.models.sketch import bin_of, nearest_rank

PERCENTILES = {"p50_duration_seconds": 50, "p95_duration_seconds": 95, "p99_duration_seconds": 99}
Key = tuple[str, str] | None  # (kind, name), or None for everything together


def duration_percentiles(
    session: Session,
    filter: UsageFilter,
    *,
    by_name: bool,
    names: Collection[str] | None = None,
) -> dict[Key, dict[str, float | None]]:
    """The PERCENTILES of the measured durations matching `filter` (restricted to `names` when
    given), in one group (key None) or per (kind, name); groups without durations are absent."""
    if filter.status is Status.RUNNING:
        return {}
    shape, values = bind(filter, plan(filter))
    if names is not None:
        values["names"] = sorted(set(names))
    raw_read, bins_read = _reads(shape, by_name, names is not None)
    durations: defaultdict[Key, list[float]] = defaultdict(list)
    for row in session.execute(raw_read, values):
        durations[(row[0], row[1]) if by_name else None].append(row[2])
    if bins_read is None:
        return {key: _exact(values) for key, values in durations.items()}

    counts: defaultdict[Key, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))
    for key, found in durations.items():
        for value in found:
            counts[key][bin_of(value)] += 1
    for row in session.execute(bins_read, values):
        key = (row[0], row[1]) if by_name else None
        counts[key][row[-2]] += int(row[-1])
    return {key: _from_bins(bins) for key, bins in counts.items()}


@statements
def _reads(
    shape: Shape, by_name: bool, named: bool
) -> tuple[sa.Select[Any], sa.Select[Any] | None]:
    """The read of the raw durations, and of the bins when the rollups answer (else None)."""
    filter, planned = shape.bound()
    pieces = plan(filter, planned)
    if filter.model is not None or filter.status is not None:
        # The bins are kept per (kind, name, project) only.
        pieces = raw_pieces(filter.since, filter.until)
    names = sa.bindparam("names", expanding=True)
    rows = usage_rows(filter, intervals=pieces.raw)
    kind, name, duration = ROW["kind"], ROW["name"], ROW["duration_seconds"]
    measured = [ROW["status"].in_(FINISHED), duration.is_not(None)]
    if named:
        measured.append(name.in_(names))
    raw_read = sa.select(kind, name, duration).select_from(rows).where(*measured)
    if not pieces.uses_rollups:
        return raw_read, None
    # The bins of the fewest rows that still tell the filter's names and project apart.
    if filter.project_id is not None:
        table = DurationBin.__table__
    elif by_name or filter.name is not None:
        table = NameDurationBin.__table__
    else:
        table = KindDurationBin.__table__
    c = table.c
    keys: list[Any] = [sa.cast(c.kind, sa.String(16)), c.name] if by_name else []
    reads = [
        sa.select(*keys, c.bin, sa.func.sum(c.count).label("count"))
        .where(*conditions, *([c.name.in_(names)] if named else []))
        .group_by(*keys, c.bin)
        for grain, intervals in pieces.rollup.items()
        for conditions in rollup_scans(table, filter, grain, intervals)
    ]
    return raw_read, reads[0] if len(reads) == 1 else sa.union_all(*reads)


def _from_bins(bins: dict[int, int]) -> dict[str, float | None]:
    values = nearest_rank(bins, PERCENTILES.values())
    return {label: values[p] for label, p in PERCENTILES.items()}


def _exact(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        label: ordered[max(1, -(-p * len(ordered) // 100)) - 1] for label, p in PERCENTILES.items()
    }


def no_percentiles() -> dict[str, float | None]:
    """The percentiles of a group without measured durations."""
    return dict.fromkeys(PERCENTILES)
