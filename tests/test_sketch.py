"""The duration sketch keeps the README's promise: the rank is exact, the value within 1%.

- For random durations (tiny, sub-second, seconds, hours, lognormal, repeated, on bin edges),
  `nearest_rank` over the bin counts reports, for every p in 1..100, the value of the bin holding
  the exact nearest-rank percentile (k = ceil(p * n / 100), the k-th smallest), and so within
  RELATIVE_ACCURACY of it; durations of SMALLEST_BINNED or less report 0.
- `bin_sql`, evaluated by SQLite and by PostgreSQL, puts every duration in the bin `bin_of`
  does, at every bin edge (the last float of each bin and the first of the next) and around
  gamma ** k.
- Bins of disjoint sets, summed, answer as the bins of their union (what lets rollups merge).
- Through the write path and the query layer: `usage_stats` from the rollups is the binned
  answer (within 1% of the exact one), and the raw-rows answer (inside `reading_raw_rows`, or for
  one model, or for less than an hour) is the exact one.

Relative errors are compared with a slack of 1e-10 of RELATIVE_ACCURACY: at a bin's edge the
error is RELATIVE_ACCURACY itself, up to floating-point rounding.
"""

from __future__ import annotations

import math
import random
import struct
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import MAX_DURATION_SECONDS, Status, UsageEvent
from claude_api.models import queries
from claude_api.models.db import make_engine
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import reading_raw_rows
from claude_api.models.rollup_tables import KindDurationBin
from claude_api.models.sketch import (
    MAPPING,
    RELATIVE_ACCURACY,
    SMALLEST_BINNED,
    ZERO_BIN,
    bin_of,
    bin_sql,
    bin_value,
    nearest_rank,
)
from tests.factories import add_events

PERCENTS = range(1, 101)
TOLERANCE = RELATIVE_ACCURACY * (1 + 1e-10)
FIRST_BIN = bin_of(math.nextafter(SMALLEST_BINNED, math.inf))
LAST_BIN = bin_of(MAX_DURATION_SECONDS)
FIELDS = {"p50_duration_seconds": 50, "p95_duration_seconds": 95, "p99_duration_seconds": 99}


def _bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", value))[0]


def _float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", bits))[0]


@cache
def last_in_bin(k: int) -> float:
    """The largest float `bin_of` puts in bin k (the next float is in bin k + 1)."""
    edge = MAPPING.gamma**k
    low, high = _bits(edge * (1 - 1e-9)), _bits(edge * (1 + 1e-9))
    assert bin_of(_float(low)) == k and bin_of(_float(high)) == k + 1
    while high - low > 1:
        middle = (low + high) // 2
        if bin_of(_float(middle)) <= k:
            low = middle
        else:
            high = middle
    return _float(low)


def edge_values(k: int) -> list[float]:
    """Durations on both sides of the edge between bins k and k + 1, and around gamma ** k."""
    last, power = last_in_bin(k), MAPPING.gamma**k
    return [
        math.nextafter(last, 0),
        last,
        math.nextafter(last, math.inf),
        math.nextafter(power, 0),
        power,
        math.nextafter(power, math.inf),
    ]


def all_edge_values() -> list[float]:
    tiny = [0.0, 1e-300, 5e-10, math.nextafter(SMALLEST_BINNED, 0), SMALLEST_BINNED]
    ends = [math.nextafter(SMALLEST_BINNED, math.inf), MAX_DURATION_SECONDS, 1.0, 3600.0]
    edges = [v for k in range(FIRST_BIN, LAST_BIN) for v in edge_values(k)]
    return tiny + ends + [v for v in edges if 0 < v <= MAX_DURATION_SECONDS]


def exact_percentile(durations: list[float], p: int) -> float:
    ordered = sorted(durations)
    return ordered[(p * len(ordered) + 99) // 100 - 1]


def bins(durations: Iterable[float]) -> Counter[int]:
    return Counter(bin_of(d) for d in durations)


def assert_within_accuracy(reported: float | None, exact: float, label: object = "") -> None:
    assert reported is not None, label
    if exact <= SMALLEST_BINNED:
        assert reported == 0.0, f"{label}: {reported} reported for {exact}"
    else:
        error = abs(reported - exact) / exact
        assert error <= TOLERANCE, f"{label}: {reported} for {exact}, relative error {error}"


# ---- nearest rank over bins -----------------------------------------------------------------

tiny = st.sampled_from(
    [0.0, SMALLEST_BINNED, math.nextafter(SMALLEST_BINNED, 0), 1e-12]
) | st.floats(min_value=0, max_value=SMALLEST_BINNED)
on_edges = st.integers(min_value=FIRST_BIN, max_value=LAST_BIN - 1).flatmap(
    lambda k: st.sampled_from(edge_values(k))
)
one_duration = st.one_of(
    tiny,
    st.floats(min_value=SMALLEST_BINNED, max_value=1, exclude_min=True),  # sub-second
    st.floats(min_value=1, max_value=600),  # seconds
    st.floats(min_value=3600, max_value=2 * 86_400),  # hours
    st.floats(min_value=math.log(SMALLEST_BINNED), max_value=math.log(1e6)).map(math.exp),
    on_edges,
)


@st.composite
def samples(draw: st.DrawFn) -> list[float]:
    """Durations: drawn one by one, or lognormal; sometimes with values repeated."""
    if draw(st.booleans()):
        values = draw(st.lists(one_duration, min_size=1, max_size=200))
    else:
        rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
        mu = draw(st.floats(min_value=-10, max_value=8))
        sigma = draw(st.floats(min_value=0.01, max_value=3))
        size = draw(st.integers(min_value=1, max_value=2000))
        values = [min(rng.lognormvariate(mu, sigma), MAX_DURATION_SECONDS) for _ in range(size)]
    if draw(st.booleans()):
        values += draw(st.lists(st.sampled_from(values), max_size=300))
    return values


@settings(max_examples=200, deadline=None, derandomize=True)
@given(durations=samples())
def test_percentiles_from_bins_are_within_accuracy_of_the_exact_ones(
    durations: list[float],
) -> None:
    reported = nearest_rank(bins(durations), PERCENTS)
    for p in PERCENTS:
        exact = exact_percentile(durations, p)
        # The rank is exact: the value is that of the bin holding the exact percentile.
        assert reported[p] == bin_value(bin_of(exact)), p
        assert_within_accuracy(reported[p], exact, f"p{p}")


def test_every_bin_edge_reports_within_accuracy() -> None:
    for duration in all_edge_values():
        assert_within_accuracy(bin_value(bin_of(duration)), duration, duration)
    assert bin_of(SMALLEST_BINNED) == ZERO_BIN == bin_of(0.0)
    assert bin_of(math.nextafter(SMALLEST_BINNED, math.inf)) > ZERO_BIN


def test_no_durations_give_no_percentiles() -> None:
    assert nearest_rank({}, [50, 95, 99]) == {50: None, 95: None, 99: None}
    assert nearest_rank({3: 0}, [50]) == {50: None}


def test_the_rank_is_exact_between_distant_bins() -> None:
    """100 durations 10% apart: every percentile is the bin of the p-th smallest, no other."""
    durations = [1.1**i for i in range(100)]
    reported = nearest_rank(bins(durations), PERCENTS)
    assert [reported[p] for p in PERCENTS] == [bin_value(bin_of(d)) for d in durations]


# ---- merging --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, derandomize=True)
@given(first=samples(), second=samples(), third=st.lists(one_duration, max_size=20))
def test_summed_bins_answer_as_the_bins_of_the_union(
    first: list[float], second: list[float], third: list[float]
) -> None:
    union = first + second + third
    summed = bins(third) + bins(second) + bins(first)
    assert summed == bins(union)
    merged = nearest_rank(summed, PERCENTS)
    assert merged == nearest_rank(bins(union), PERCENTS)
    for p in (50, 95, 99):
        assert_within_accuracy(merged[p], exact_percentile(union, p), f"p{p}")


# ---- bin_sql on real databases --------------------------------------------------------------


@pytest.fixture
def any_engine(database_url: str) -> Iterator[Engine]:
    """An empty, unmigrated database: SQLite, then PostgreSQL."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_sql_bins_are_the_python_bins(any_engine: Engine) -> None:
    values = all_edge_values()
    rng = random.Random(7)
    values += [math.exp(rng.uniform(math.log(1e-10), math.log(1e9))) for _ in range(2000)]
    probe = sa.Table(
        "sketch_probe",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("duration", sa.Float),
        prefixes=["TEMPORARY"],
    )
    with any_engine.begin() as connection:
        probe.create(connection)
        connection.execute(probe.insert(), [{"id": i, "duration": v} for i, v in enumerate(values)])
        rows = connection.execute(
            sa.select(probe.c.id, probe.c.duration, sa.literal_column(bin_sql("duration")))
        ).all()
    assert len(rows) == len(values)
    assert all(stored == values[i] for i, stored, _ in rows)  # stored exactly
    wrong = [(values[i], sql_bin, bin_of(values[i])) for i, _, sql_bin in rows]
    wrong = [row for row in wrong if row[1] != row[2]]
    assert not wrong, f"{len(wrong)} (duration, SQL bin, bin_of) differ: {wrong[:10]}"


# ---- end to end through the query layer -----------------------------------------------------

START = datetime(2026, 1, 5, tzinfo=UTC)


def stored_durations() -> list[float | None]:
    """Durations of every kind, bin edges among them; None for a finish without one."""
    rng = random.Random(2026)
    lognormal = [rng.lognormvariate(1, 1.5) for _ in range(150)]
    edges = [v for k in (-700, -200, 0, 1, 150, 300, 450) for v in edge_values(k)]
    fixed = [0.0, 5e-10, SMALLEST_BINNED, 0.003, 0.5, 2.0, 2.0, 2.0, 7200.0, 40_000.0, None]
    return lognormal + edges + fixed + lognormal[:30]  # with values repeated


def events() -> list[UsageEvent]:
    result = []
    for i, duration in enumerate(stored_durations()):
        fields = {
            "event_id": uuid.UUID(int=i + 1),
            "kind": "agent" if i % 3 else "skill",
            "name": ["alpha", "beta"][i % 2],
            "task_id": f"task-{i % 7}",
            "project_id": [None, "web", "api"][i % 3],
            "model": "m2" if i % 5 == 0 else "m1",
            "timestamp": START + timedelta(minutes=7 * i),
            "status": Status.FAILED if i % 11 == 0 else Status.COMPLETED,
            "duration_seconds": duration,
            "source": "test",
        }
        result.append(UsageEvent.model_validate(fields))
        if i % 13 == 0:  # a start alone: counted, never measured
            running = {"event_id": uuid.UUID(int=10_000 + i), "status": Status.RUNNING}
            result.append(UsageEvent.model_validate(fields | running | {"duration_seconds": None}))
    return result


def percentiles(engine: Engine, filter: UsageFilter) -> dict[int, float | None]:
    with Session(engine) as session:
        stats = queries.usage_stats(session, filter=filter, top_errors=0)
    return {p: getattr(stats, field) for field, p in FIELDS.items()}


def measured(stored: list[UsageEvent], filter: UsageFilter) -> list[float]:
    return [
        e.duration_seconds
        for e in stored
        if e.status is not Status.RUNNING
        and e.duration_seconds is not None
        and (filter.name is None or e.name == filter.name)
        and (filter.project_id is None or e.project_id == filter.project_id)
        and (filter.model is None or e.model == filter.model)
        and (filter.since is None or e.timestamp >= filter.since)
        and (filter.until is None or e.timestamp < filter.until)
    ]


BINNED = [  # percentiles from rollup bins (and raw edges added to the same bins)
    UsageFilter(),
    UsageFilter(name="alpha"),
    UsageFilter(project_id="web"),
    UsageFilter(since=START + timedelta(minutes=30), until=START + timedelta(hours=20, minutes=9)),
]
EXACT = [  # percentiles from raw rows only
    UsageFilter(model="m2"),
    UsageFilter(since=START + timedelta(minutes=5), until=START + timedelta(minutes=59)),
]


def test_query_percentiles_are_binned_from_rollups_and_exact_from_raw_rows(
    engine: Engine,
) -> None:
    stored = events()
    for batch in (stored[:100], stored[100:150], stored[150:]):  # rollup bins merged on write
        add_events(engine, *batch)
    # Every stored duration, bin edges among them, is in the bin `bin_of` gives it.
    table = KindDurationBin.__table__
    with engine.connect() as connection:
        rolled = connection.execute(
            sa.select(table.c.bin, sa.func.sum(table.c.count))
            .where(table.c.grain == "month")
            .group_by(table.c.bin)
        ).all()
    assert {bin: int(count) for bin, count in rolled} == bins(measured(stored, UsageFilter()))
    for filter in BINNED + EXACT:
        durations = measured(stored, filter)
        assert len(durations) >= 5, filter
        exact = {p: exact_percentile(durations, p) for p in FIELDS.values()}
        with reading_raw_rows():
            assert percentiles(engine, filter) == exact, filter
        answer = percentiles(engine, filter)
        if filter in EXACT:
            assert answer == exact, filter
            continue
        # The SQL bins of the stored rows are the Python bins of their durations.
        assert answer == nearest_rank(bins(durations), FIELDS.values()), filter
        for p, value in answer.items():
            assert_within_accuracy(value, exact[p], f"p{p} of {filter}")
        if filter == UsageFilter():  # the rollups did answer: binned, not exact
            assert answer != exact
