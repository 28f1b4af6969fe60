"""The rollups answer exactly as the raw rows do.

A property-based test writes random event sets (duplicates, starts with later finishes, finishes
without starts, batches, purges) and asks every aggregate question both ways: normally, where
the query layer reads the rollups for whole hours, days and months, and inside
`reading_raw_rows()`, where it reads the raw rows only. Every answer must be equal; percentiles
within the sketch's 1%. Costs and durations are multiples of 1/64, so float sums are exact in
any order and leaderboard ties cannot flip.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import NotFound
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models import queries
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.models.local_days import keep_days, start_hours
from claude_api.models.queries import reading_raw_rows
from claude_api.models.retention import purge
from claude_api.models.rollups import MEASURE_TABLES, ROLLUP_TABLES, backfill
from claude_api.models.sketch import RELATIVE_ACCURACY
from tests.factories import add_events

START = datetime(2026, 1, 28, tzinfo=UTC)  # data spans a month boundary and DST in New York
NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
NAMES = ["alpha", "beta", "Zeta"]
PROJECTS = [None, "web", "api"]
MODELS = [None, "claude-sonnet-4-5", "claude-haiku-4-5"]
ERRORS = ["boom", "Reached maximum number of turns (25)", "x" * 300]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu"]
TABLES = (
    "agent_usage", "skill_usage", *ROLLUP_TABLES, "retention_state", "data_version",
    "rollup_day_starts",
)  # fmt: skip
# The days of New York and Paris, kept as daily rollups besides UTC days (in a history, the
# local days of New York are then read whole; those of Kolkata and Kathmandu still by hours).
LOCAL_DAY_ZONES = ["America/New_York", "Europe/Paris"]
PERCENTILE_FIELDS = {"p50_duration_seconds", "p95_duration_seconds", "p99_duration_seconds"}
PERCENTILE_BOARDS = {f"leaderboard {LeaderboardMetric.P50}", f"leaderboard {LeaderboardMetric.P95}"}

dyadic = st.integers(min_value=0, max_value=64 * 500).map(lambda n: n / 64)
# Instants on and off the boundaries of hours, days and months.
offsets = st.one_of(
    st.integers(min_value=0, max_value=60 * 24).map(lambda hours: timedelta(hours=hours)),
    st.integers(min_value=0, max_value=60).map(lambda days: timedelta(days=days)),
    st.integers(min_value=0, max_value=60 * 86_400).map(lambda s: timedelta(seconds=s)),
)


@st.composite
def invocations(draw: st.DrawFn) -> list[UsageEvent]:
    """The events of one invocation: finished; or a start and its finish; or a start alone;
    sometimes sent twice."""
    status = draw(st.sampled_from([Status.COMPLETED, Status.COMPLETED, Status.FAILED]))
    fields: dict[str, Any] = {
        "event_id": uuid.UUID(int=draw(st.integers(min_value=1, max_value=2**64))),
        "kind": draw(st.sampled_from(list(Kind))),
        "name": draw(st.sampled_from(NAMES)),
        "task_id": f"task-{draw(st.integers(min_value=0, max_value=5))}",
        "project_id": draw(st.sampled_from(PROJECTS)),
        "timestamp": START + draw(offsets),
        "source": "test",
    }
    finish = UsageEvent.model_validate(
        fields
        | {
            "status": status,
            "model": draw(st.sampled_from(MODELS)),
            "duration_seconds": draw(st.none() | dyadic),
            "cost_usd": draw(st.none() | dyadic),
            "input_tokens": draw(st.none() | st.integers(min_value=0, max_value=10_000)),
            "output_tokens": draw(st.none() | st.integers(min_value=0, max_value=10_000)),
            "cache_read_tokens": draw(st.none() | st.integers(min_value=0, max_value=10**12)),
            "cache_creation_tokens": draw(st.none() | st.integers(min_value=0, max_value=10**9)),
            "error_message": draw(st.sampled_from(ERRORS)) if status is Status.FAILED else None,
        }
    )
    shape = draw(st.sampled_from(["finished", "started and finished", "running"]))
    # The start names the same invocation: kind, name, task and project are the finish's.
    start = UsageEvent.model_validate(fields | {"status": Status.RUNNING})
    events = {"finished": [finish], "started and finished": [start, finish], "running": [start]}
    chosen = events[shape]
    return chosen + chosen if draw(st.booleans()) else chosen  # a replay


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[UsageEvent]], bool]:
    """Batches of events, written in order; and whether raw rows are purged at the end."""
    # One invocation per event id: an id reused by another invocation is a conflict, refused.
    groups = draw(st.lists(invocations(), max_size=25, unique_by=lambda group: group[0].event_id))
    events = [event for group in groups for event in group]
    batches = draw(st.integers(min_value=1, max_value=4))
    order = draw(st.permutations(range(len(events)))) if draw(st.booleans()) else None
    if order is not None:  # finishes may arrive before their starts, in any batch
        events = [events[i] for i in order]
    size = max(1, math.ceil(len(events) / batches))
    return [events[i : i + size] for i in range(0, len(events), size)], draw(st.booleans())


@st.composite
def filters(draw: st.DrawFn) -> UsageFilter:
    since = draw(st.none() | offsets.map(lambda offset: START + offset))
    until = draw(st.none() | offsets.map(lambda offset: START + offset))
    if since is not None and until is not None and since >= until:
        since, until = until - timedelta(hours=1), since + timedelta(minutes=1)
    return UsageFilter(
        kind=draw(st.none() | st.sampled_from(list(Kind))),
        name=draw(st.none() | st.sampled_from(NAMES)),
        project_id=draw(st.sampled_from(PROJECTS)),
        model=draw(st.none() | st.sampled_from(MODELS[1:])),
        status=draw(st.none() | st.sampled_from(list(Status))),
        since=since,
        until=until,
        tz=draw(st.sampled_from(ZONES)),
    )


def questions(filter: UsageFilter, day: date) -> dict[str, Callable[[Session], Any]]:
    """Every aggregate question of the query layer, for one filter."""
    ranged = filter.replace(
        since=filter.since or START - timedelta(days=2), until=filter.until or NOW
    )
    unranged = filter.replace(since=None, until=None)
    asked: dict[str, Callable[[Session], Any]] = {
        "stats": lambda s: queries.usage_stats(s, filter=filter, top_errors=3),
        "stats by name": lambda s: queries.stats_by_name(s, filter=filter, top_errors=2),
        "errors": lambda s: queries.errors_by_name(s, filter=filter, limit=5),
        "names": lambda s: queries.list_names(s, kind=filter.kind, project_id=filter.project_id),
    }
    for metric in LeaderboardMetric:
        asked[f"leaderboard {metric}"] = lambda s, m=metric: queries.leaderboard(
            s, filter=filter, metric=m, limit=10
        )
    # Hours over at most 40 days: a history holds at most 1,000 buckets.
    hourly = ranged.replace(since=max(ranged.since, ranged.until - timedelta(days=40)))
    for period in Period:
        asked[f"history {period}"] = lambda s, p=period: queries.usage_by_period(
            s, filter=hourly if p is Period.HOUR else ranged, period=p, now=NOW
        )
        if period is Period.HOUR:
            continue  # a report covers a day, a week or a month
        asked[f"report {period}"] = lambda s, p=period: queries.usage_report(
            s, period=p, on=day, filter=unranged, now=NOW
        )
    return asked


def answer(session: Session, question: Callable[[Session], Any]) -> Any:
    try:
        return question(session)
    except NotFound as error:
        return ("NotFound", str(error))


def assert_same(rolled: Any, raw: Any, path: str = "") -> None:
    """Equal, field by field; floats to 1e-9, percentiles to the sketch's accuracy."""
    if dataclasses.is_dataclass(raw):
        assert type(rolled) is type(raw), path
        for field in dataclasses.fields(raw):
            name = field.name
            a, b = getattr(rolled, name), getattr(raw, name)
            if name in PERCENTILE_FIELDS and a is not None and b is not None:
                assert abs(a - b) <= RELATIVE_ACCURACY * b + 1e-12, f"{path}.{name}: {a} != {b}"
            else:
                assert_same(a, b, f"{path}.{name}")
    elif isinstance(raw, list | tuple):
        assert len(rolled) == len(raw), f"{path}: {len(rolled)} != {len(raw)} items"
        for index, (a, b) in enumerate(zip(rolled, raw, strict=True)):
            assert_same(a, b, f"{path}[{index}]")
    elif isinstance(raw, float) and isinstance(rolled, float):
        assert math.isclose(rolled, raw, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {rolled} != {raw}"
    else:
        assert rolled == raw, f"{path}: {rolled!r} != {raw!r}"


def assert_same_answer(rolled: Any, raw: Any, name: str) -> None:
    """`assert_same`, except that a board ranked by a percentile is compared name by name: its
    values are each within the sketch's accuracy, so two close names may rank either way."""
    if name not in PERCENTILE_BOARDS:
        assert_same(rolled, raw, name)
        return
    by_name = {(entry.kind, entry.name): entry for entry in raw}
    assert {(entry.kind, entry.name) for entry in rolled} == set(by_name), name
    for entry in rolled:
        expected = by_name[(entry.kind, entry.name)]
        assert entry.invocations == expected.invocations, f"{name}: {entry.name}"
        assert abs(entry.value - expected.value) <= RELATIVE_ACCURACY * expected.value + 1e-12, (
            f"{name}: {entry.name}: {entry.value} != {expected.value}"
        )


def empty(engine: Engine) -> None:
    # PostgreSQL's registry of event ids too: an id it still held would be taken for the
    # invocation of a row deleted here.
    registry = ("invocation_ids",) if engine.dialect.name == "postgresql" else ()
    with engine.begin() as connection:
        for table in (*TABLES, *registry):
            connection.execute(sa.text(f"DELETE FROM {table}"))


def answers(engine: Engine, asked: dict[str, Callable[[Session], Any]]) -> dict[str, Any]:
    with Session(engine) as session:
        return {name: answer(session, question) for name, question in asked.items()}


def raw_answers(engine: Engine, asked: dict[str, Callable[[Session], Any]]) -> dict[str, Any]:
    with reading_raw_rows():
        return answers(engine, asked)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=histories(),
    filter=filters(),
    day=offsets.map(lambda o: (START + o).date()),
    local_days_from=st.sampled_from([None, 0, 1]),
)
def test_rollups_answer_as_the_raw_rows(
    engine: Engine,
    history: tuple[list[list[UsageEvent]], bool],
    filter: UsageFilter,
    day: date,
    local_days_from: int | None,
) -> None:
    """`local_days_from`: the batch before which the days of LOCAL_DAY_ZONES start to be kept
    (filled from the hours of the batches before it, then folded by each write); None: never."""
    batches, purged = history
    empty(engine)
    for number, batch in enumerate(batches):
        if number == local_days_from:
            assert keep_days(engine, start_hours(LOCAL_DAY_ZONES))
        add_events(engine, *batch)
    asked = questions(filter, day)
    rolled, raw = answers(engine, asked), raw_answers(engine, asked)
    for name in asked:
        assert_same_answer(rolled[name], raw[name], name)
    if not purged:
        return
    # Purge the raw rows of the first weeks: the rollups keep answering for whole periods as
    # the raw rows did before (running rows are not rolled up, so leave them out).
    whole_periods = {
        name: question
        for name, question in questions(
            UsageFilter(status=Status.COMPLETED, tz="UTC"), START.date()
        ).items()
        # Percentiles of one status are computed from the raw rows (the sketch bins do not
        # keep the status), so once those rows are purged they are unknown.
        if name.startswith(("report", "leaderboard")) and name not in PERCENTILE_BOARDS
    }
    before = answers(engine, whole_periods)
    result = purge(engine, raw_retention_days=68, rollup_retention_days=None, now=NOW)
    assert result.raw_before == datetime(2026, 2, 11, tzinfo=UTC)
    after = answers(engine, whole_periods)
    for name in whole_periods:
        assert_same_answer(after[name], before[name], name)


def test_the_checks_above_can_fail(engine: Engine) -> None:
    """A rollup row changed by hand is told apart from the raw rows' answer."""
    add_events(
        engine,
        *(
            UsageEvent.model_validate(
                {
                    "event_id": uuid.uuid4(),
                    "kind": "agent",
                    "name": "alpha",
                    "task_id": "t",
                    "timestamp": START + timedelta(hours=i),
                    "status": "completed",
                    "duration_seconds": 1.0 + i,
                    "source": "test",
                }
            )
            for i in range(30)
        ),
    )
    asked = {"stats": lambda s: queries.usage_stats(s, filter=UsageFilter(name="alpha"))}
    assert_same(answers(engine, asked)["stats"], raw_answers(engine, asked)["stats"])
    with engine.begin() as connection:
        for table in MEASURE_TABLES:  # whichever of them the question reads
            connection.execute(sa.text(f"UPDATE {table} SET invocations = invocations + 1"))
    with pytest.raises(AssertionError, match="invocations"), queries.computing_afresh():
        # Afresh: a change by hand leaves the data version as it was, so the cached answer
        # would still be served.
        assert_same(answers(engine, asked)["stats"], raw_answers(engine, asked)["stats"])


def test_a_replayed_batch_and_a_late_finish_count_once(engine: Engine) -> None:
    start = UsageEvent.model_validate(
        {
            "event_id": uuid.uuid4(),
            "kind": "agent",
            "name": "alpha",
            "task_id": "t",
            "timestamp": START,
            "status": "running",
            "source": "test",
        }
    )
    finish = start.model_copy(
        update={"status": Status.COMPLETED, "duration_seconds": 3.0, "cost_usd": 0.5}
    )
    add_events(engine, start)
    with Session(engine) as session:
        assert queries.usage_stats(session, filter=UsageFilter()).running == 1
    for _ in range(3):  # the finish, then two replays of it
        add_events(engine, finish)
    with Session(engine) as session:
        stats = queries.usage_stats(session, filter=UsageFilter())
    assert (stats.invocations, stats.completed, stats.running) == (1, 1, 0)
    assert stats.total_cost_usd == 0.5
    with engine.connect() as connection:
        rolled = connection.execute(
            sa.text("SELECT grain, invocations FROM usage_rollup ORDER BY grain")
        ).all()
    assert [tuple(row) for row in rolled] == [("day", 1), ("hour", 1), ("month", 1)]


def test_backfill_builds_the_same_rollups(engine: Engine) -> None:
    events = [
        UsageEvent.model_validate(
            {
                "event_id": uuid.uuid4(),
                "kind": "skill" if i % 3 else "agent",
                "name": NAMES[i % 3],
                "task_id": f"t{i % 4}",
                "project_id": PROJECTS[i % 3],
                "model": MODELS[i % 3],
                "timestamp": START + timedelta(minutes=97 * i),
                "status": "failed" if i % 5 == 0 else "completed",
                "error_message": ERRORS[i % 3] if i % 5 == 0 else None,
                "duration_seconds": i / 64,
                "cost_usd": i / 32,
                "cache_read_tokens": i * 10_000_019 if i % 7 else None,
                "cache_creation_tokens": i * 101 if i % 4 else None,
                "source": "test",
            }
        )
        for i in range(200)
    ]
    add_events(engine, *events)
    rollup_tables = [table for table in TABLES if table.startswith("usage_")]

    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        with engine.connect() as connection:
            return {
                table: sorted(
                    (tuple(row) for row in connection.execute(sa.text(f"SELECT * FROM {table}"))),
                    key=repr,
                )
                for table in rollup_tables
            }

    written = snapshot()
    assert all(written.values())
    with engine.begin() as connection:
        for table in rollup_tables:
            connection.execute(sa.text(f"DELETE FROM {table}"))
        backfill(connection)
    assert snapshot() == written
