"""Duration percentiles (p50, p95, p99) of finished invocations, nearest-rank.

Over whole buckets they come from the rollups' DDSketch bins, merged by summing counts, so the
cost does not grow with the number of invocations; durations of the raw edges are added to the
same bins. Every such percentile is within 1% of the exact one (`claude_api.models.sketch`).
The bins are kept per (kind, name, project): percentiles of one model or one status, like every
question that reads raw rows only (one task, a range shorter than an hour, or inside
`reading_raw_rows`), are exact and computed from the raw rows.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.events import Status
from claude_api.models.filters import UsageFilter
from claude_api.models.queries._partial_sums import (
    FINISHED,
    counting_plan,
    plan,
    reads_bins,
    rollup_scans,
    settled_and_rest,
)
from claude_api.models.queries._range_split import Pieces, raw_pieces
from claude_api.models.queries._raw_rows import ROW, usage_rows
from claude_api.models.queries._statement_shapes import Shape, bind, statements
from claude_api.models.rollup_tables import DurationBin, KindDurationBin, NameDurationBin
from claude_api.models.sketch import bin_of, nearest_rank

PERCENTILES = {"p50_duration_seconds": 50, "p95_duration_seconds": 95, "p99_duration_seconds": 99}
Key = tuple[str, str] | None  # (kind, name), or None for everything together
Binned = tuple[Key, "array[int]", "array[int]"]  # a key's bins and their counts


def duration_percentiles(
    session: Session,
    filter: UsageFilter,
    *,
    by_name: bool,
    names: Collection[str] | None = None,
    pieces: Pieces | None = None,
) -> dict[Key, dict[str, float | None]]:
    """The PERCENTILES of the measured durations matching `filter` (restricted to `names` when
    given), in one group (key None) or per (kind, name); groups without durations are absent.
    `pieces`: the filter's `counting_plan`, when the caller has it."""
    if filter.status is Status.RUNNING:
        return {}
    listed = sorted(set(names)) if names is not None else None

    def summed_bins(settled: UsageFilter, pieces: Pieces) -> tuple[Binned, ...]:
        return _summed_bins(_durations(session, settled, pieces, by_name, listed)[0], by_name)

    key = ("duration bins", by_name, tuple(listed) if listed is not None else None)
    found = settled_and_rest(session, filter, key, summed_bins)
    if found is not None:
        kept, rest = found
        rows = _durations(session, filter, rest, by_name, listed)[0]
        return percentiles_of(rows, by_name=by_name, exact=False, binned=kept)
    pieces = pieces if pieces is not None else counting_plan(session, filter)
    rows, exact = _durations(session, filter, pieces, by_name, listed)
    return percentiles_of(rows, by_name=by_name, exact=exact)


def _durations(
    session: Session, filter: UsageFilter, pieces: Pieces, by_name: bool, names: list[str] | None
) -> tuple[Sequence[Any], bool]:
    """The rows of `durations_read` for (`filter`, `pieces`), and whether they are exact."""
    shape, values = bind(filter, pieces)
    if names is not None:
        values["names"] = names
    read, exact = durations_read(shape, by_name, names is not None)
    return session.execute(read, values).all(), exact


def _summed_bins(rows: Iterable[Sequence[Any]], by_name: bool) -> tuple[Binned, ...]:
    """The rows of `durations_read` summed per key and bin, packed in arrays to be kept."""
    groups: defaultdict[Key, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))
    for kind, name, duration, bin, count in rows:
        bins = groups[(kind, name) if by_name else None]
        if bin is None:
            bins[bin_of(duration)] += 1
        else:
            bins[bin] += int(count)
    return tuple(
        (key, array("q", bins.keys()), array("q", bins.values())) for key, bins in groups.items()
    )


@statements
def durations_read(shape: Shape, by_name: bool, named: bool) -> tuple[sa.Select[Any], bool]:
    """One read of what the percentiles of `shape` come from, with the columns `kind`, `name`,
    `duration` (a raw row's) and `bin`, `count` (summed bins of the rollups, less those of the
    pieces' `less` buckets, per (kind, name) when `by_name`), restricted to the bind parameter
    `names` when `named`; and whether the percentiles are exact (the raw rows answer alone)."""
    filter, planned = shape.bound()
    pieces = plan(filter, planned) if reads_bins(filter) else raw_pieces(filter.since, filter.until)
    names = sa.bindparam("names", expanding=True)
    reads: list[Any] = []
    if pieces.raw or not pieces.uses_rollups:
        rows = usage_rows(filter, intervals=pieces.raw)
        measured = [ROW["status"].in_(FINISHED), ROW["duration_seconds"].is_not(None)]
        if named:
            measured.append(ROW["name"].in_(names))
        reads.append(
            sa.select(
                ROW["kind"],
                ROW["name"],
                ROW["duration_seconds"].label("duration"),
                sa.cast(sa.null(), sa.Integer).label("bin"),
                sa.cast(sa.null(), sa.BigInteger).label("count"),
            )
            .select_from(rows)
            .where(*measured)
        )
    if not pieces.uses_rollups:
        return reads[0], True
    # The bins of the fewest rows that still tell the filter's names and project apart.
    if filter.project_id is not None:
        table = DurationBin.__table__
    elif by_name or filter.name is not None:
        table = NameDurationBin.__table__
    else:
        table = KindDurationBin.__table__
    c = table.c
    name = c.name if "name" in c else sa.null().label("name")
    scans = [
        sa.select(c.kind, name, c.bin, count.label("count")).where(
            *conditions, *([c.name.in_(names)] if named else [])
        )
        for grains, count in ((pieces.rollup, c.count), (pieces.less, -c.count))
        for grain, intervals in grains.items()
        for conditions in rollup_scans(table, filter, grain, intervals)
    ]
    found = (scans[0] if len(scans) == 1 else sa.union_all(*scans)).subquery("bins")
    # Grouped by the columns themselves, the kind only when it varies: sorting tens of
    # thousands of bins costs a third more with a constant kind in the key, more with a CAST.
    grouped: list[Any] = []
    if not by_name:
        keys: list[Any] = [sa.cast(sa.null(), sa.String(16)), sa.cast(sa.null(), sa.String())]
    elif filter.kind is not None:
        keys = [sa.literal(filter.kind.value, sa.String(16)), found.c.name]
        grouped = [found.c.name]
    else:
        keys = [sa.cast(found.c.kind, sa.String(16)), found.c.name]
        grouped = [found.c.kind, found.c.name]
    bins = sa.select(
        *(key.label(label) for key, label in zip(keys, ("kind", "name"), strict=True)),
        sa.cast(sa.null(), sa.Float).label("duration"),
        found.c.bin,
        sa.func.sum(found.c.count).label("count"),
    ).group_by(*grouped, found.c.bin)
    # A bin counted only in buckets subtracted again has no duration in the range.
    bins = bins.having(sa.func.sum(found.c.count) != 0)
    # The bins first: their column types are those PostgreSQL gives the union.
    return (sa.union_all(bins, *reads) if reads else bins), False


def percentiles_of(
    rows: Iterable[Sequence[Any]], *, by_name: bool, exact: bool, binned: Iterable[Binned] = ()
) -> dict[Key, dict[str, float | None]]:
    """The PERCENTILES per key of the rows of `durations_read`: (kind, name, duration, bin,
    count) each, unpacked as tuples (thousands of bins per leaderboard), plus the counts of
    `binned` (inexact then)."""
    durations: defaultdict[Key, list[float]] = defaultdict(list)
    counts: defaultdict[Key, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))
    for key, bins, numbers in binned:
        counts[key].update(zip(bins, numbers, strict=True))
    for kind, name, duration, bin, count in rows:
        key = (kind, name) if by_name else None
        if bin is None:
            durations[key].append(duration)
        else:
            counts[key][bin] += int(count)
    if exact:
        return {key: _exact(values) for key, values in durations.items()}
    for key, values in durations.items():
        for value in values:
            counts[key][bin_of(value)] += 1
    # Bins summed from several reads may come to nothing (a bucket added, then subtracted).
    return {key: _from_bins(bins) for key, bins in counts.items() if any(bins.values())}


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
