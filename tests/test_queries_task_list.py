"""list_tasks read through the indexes: whichever way it finds a page's tasks (walking the newest
invocations, or reading the matching tasks first), the pages are the tasks the filter chooses,
the most recently seen first, as computed here from the events; and a busy database's pages
read the rows they need, not the whole range."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event
from sqlmodel import Session

from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import list_tasks, task_list
from tests.factories import BASE_TIME, add_events, make_event

NAMES = {Kind.AGENT: ["planner", "reviewer", "tester"], Kind.SKILL: ["pdf", "commit"]}


def tasks_of(seed: int, count: int) -> list[UsageEvent]:
    """`count` tasks of 1-5 invocations each over three days, some starting at the same
    instant as another (ties broken by task id), in two projects or none."""
    rng = random.Random(seed)
    events = []
    for number in range(count):
        start = BASE_TIME + timedelta(minutes=rng.randrange(3 * 24 * 60))
        for _ in range(rng.randint(1, 5)):
            kind = rng.choice([Kind.AGENT, Kind.AGENT, Kind.SKILL])
            events.append(
                make_event(
                    kind=kind,
                    name=rng.choice(NAMES[kind]),
                    task_id=f"t{number:03d}",
                    project_id=rng.choice(["web", "api", None]),
                    timestamp=start + timedelta(minutes=rng.choice([0, 0, 5, 90, 600])),
                    status=rng.choice([Status.COMPLETED] * 4 + [Status.FAILED, Status.RUNNING]),
                )
            )
    return events


def expected_order(events: list[UsageEvent], filter: UsageFilter) -> list[str]:
    def matches(e: UsageEvent) -> bool:
        return (
            (filter.kind is None or e.kind is filter.kind)
            and (filter.name is None or e.name == filter.name)
            and (filter.project_id is None or e.project_id == filter.project_id)
            and (filter.status is None or e.status is filter.status)
            and (filter.since is None or e.timestamp >= filter.since)
            and (filter.until is None or e.timestamp < filter.until)
        )

    chosen = {e.task_id for e in events if matches(e)}
    seen = {
        t: max(
            e.timestamp
            for e in events
            if e.task_id == t and (filter.project_id is None or e.project_id == filter.project_id)
        )
        for t in chosen
    }
    return sorted(chosen, key=lambda t: (-seen[t].timestamp(), t))


def walk(session: Session, filter: UsageFilter, limit: int) -> list[str]:
    found: list[str] = []
    after = None
    while True:
        page = list_tasks(session, filter=filter, limit=limit, after=after)
        found += [task.task_id for task in page.items]
        if not page.has_next:
            return found
        after = page.next_cursor


filters = st.builds(
    UsageFilter,
    kind=st.none() | st.sampled_from(list(Kind)),
    name=st.none() | st.sampled_from(["planner", "pdf", "tester", "nobody"]),
    project_id=st.none() | st.sampled_from(["web", "api"]),
    status=st.none() | st.sampled_from(list(Status)),
    since=st.none() | st.integers(0, 48).map(lambda h: BASE_TIME + timedelta(hours=h)),
    until=st.none() | st.integers(49, 90).map(lambda h: BASE_TIME + timedelta(hours=h)),
)


@pytest.fixture
def seeded(engine: Engine) -> tuple[Engine, list[UsageEvent]]:
    events = tasks_of(15, 120)
    add_events(engine, *events)
    return engine, events


@pytest.mark.parametrize("matching_first", [False, True], ids=["walk", "matching-first"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filter=filters, limit=st.sampled_from([1, 3, 7, 50]))
def test_pages_follow_the_tasks_last_seen_either_way(
    seeded, monkeypatch, matching_first: bool, filter: UsageFilter, limit: int
) -> None:
    engine, events = seeded
    monkeypatch.setattr(task_list, "_walk_is_longer", lambda *args: matching_first)
    with Session(engine) as session:
        assert walk(session, filter, limit) == expected_order(events, filter)


def test_a_page_of_a_busy_range_reads_its_tasks_rows_not_the_range(engine: Engine) -> None:
    """300 tasks of four invocations an hour apart in one day; the first page of 5 of them
    fetches a few dozen rows, where aggregating the range would read 1,200."""
    events = [
        make_event(task_id=f"t{n:03d}", timestamp=BASE_TIME + timedelta(minutes=4 * n + i))
        for n in range(300)
        for i in range(4)
    ]
    add_events(engine, *events)
    filter = UsageFilter(since=BASE_TIME, until=BASE_TIME + timedelta(days=1))
    rows_read = []

    def rows(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        rows_read.append(statement)

    event.listen(engine, "after_cursor_execute", rows)
    try:
        with Session(engine) as session:
            page = list_tasks(session, filter=filter, limit=5)
    finally:
        event.remove(engine, "after_cursor_execute", rows)
    assert [t.task_id for t in page.items] == ["t299", "t298", "t297", "t296", "t295"]
    assert page.items[0].invocations == 4
    # Walked newest first: only the page's tasks, listed by id, are grouped; never every task
    # of the day chosen by a subquery.
    grouped = [s for s in rows_read if "GROUP BY" in s]
    assert grouped and not any("IN (SELECT" in s.upper() for s in grouped)
