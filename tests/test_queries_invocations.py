"""list_invocations and count_invocations: every invocation in start order, page by page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import InvalidFilter
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import count_invocations, list_invocations
from claude_api.models.queries._pagination import encode_cursor
from tests.factories import BASE_TIME, add_events, make_event


def order(events: list[UsageEvent]) -> list[UsageEvent]:
    """The listing's order, computed from the events: start, kind (agent first), event id."""
    return sorted(events, key=lambda e: (e.timestamp, e.kind.value, str(e.event_id)))


def mixed_events() -> list[UsageEvent]:
    """Agents and skills, several starting at the same instant, so every tie-break matters."""
    events = []
    for minute in range(4):
        at = BASE_TIME + timedelta(minutes=minute)
        for _ in range(3):
            events.append(make_event(timestamp=at, name=f"agent-{minute}", project_id="web"))
            events.append(make_event(kind="skill", timestamp=at, name="pdf", task_id="task-2"))
    events.append(make_event(timestamp=BASE_TIME + timedelta(hours=1), status=Status.RUNNING))
    return events


def every_page(session: Session, filter: UsageFilter, limit: int) -> list[list[object]]:
    pages, after = [], None
    while True:
        page = list_invocations(session, filter=filter, limit=limit, after=after)
        pages.append(list(page.items))
        if not page.has_next:
            return pages
        after = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 50])
def test_pages_list_every_invocation_once_in_order(engine: Engine, limit: int) -> None:
    events = mixed_events()
    add_events(engine, *reversed(events))
    with Session(engine) as session:
        pages = every_page(session, UsageFilter(), limit)
    listed = [item for page in pages for item in page]
    assert [item.event_id for item in listed] == [e.event_id for e in order(events)]
    assert all(len(page) == limit for page in pages[:-1])
    assert len(pages) == max(1, -(-len(events) // limit))


def test_rows_carry_every_field_of_the_invocation(engine: Engine) -> None:
    parent = make_event(task_id="t-1", project_id="web", finished_at=BASE_TIME)
    child = make_event(
        kind="skill",
        name="pdf",
        task_id="t-1",
        parent_id=parent.event_id,
        timestamp=BASE_TIME + timedelta(seconds=1),
        status=Status.FAILED,
        error_message="bad file",
        model="claude-haiku-4-5",
    )
    add_events(engine, parent, child)
    with Session(engine) as session:
        items = list_invocations(session).items
    for item, event in zip(items, [parent, child], strict=True):
        for field in (
            "kind", "name", "event_id", "task_id", "parent_id", "project_id", "status",
            "timestamp", "duration_seconds", "cost_usd", "input_tokens", "output_tokens",
            "model", "error_message",
        ):  # fmt: skip
            assert getattr(item, field) == getattr(event, field), field


@pytest.mark.parametrize(
    ("filter", "keep"),
    [
        (UsageFilter(kind=Kind.SKILL), lambda e: e.kind is Kind.SKILL),
        (UsageFilter(kind=Kind.AGENT), lambda e: e.kind is Kind.AGENT),
        (UsageFilter(name="pdf"), lambda e: e.name == "pdf"),
        (UsageFilter(project_id="web"), lambda e: e.project_id == "web"),
        (UsageFilter(status=Status.RUNNING), lambda e: e.status is Status.RUNNING),
        (
            UsageFilter(
                since=BASE_TIME + timedelta(minutes=1), until=BASE_TIME + timedelta(minutes=3)
            ),
            lambda e: (
                BASE_TIME + timedelta(minutes=1) <= e.timestamp < BASE_TIME + timedelta(minutes=3)
            ),
        ),
    ],
)
def test_filters_narrow_the_listing_and_the_count(engine: Engine, filter, keep) -> None:  # type: ignore[no-untyped-def]
    events = mixed_events()
    add_events(engine, *events)
    wanted = order([e for e in events if keep(e)])
    with Session(engine) as session:
        listed = [item for page in every_page(session, filter, 4) for item in page]
        total = count_invocations(session, filter=filter)
    assert [item.event_id for item in listed] == [e.event_id for e in wanted]
    assert total == len(wanted)


def test_rows_recorded_after_the_cursor_show_up_on_later_pages(engine: Engine) -> None:
    first = make_events_at(0, 1, 2)
    add_events(engine, *first)
    with Session(engine) as session:
        page = list_invocations(session, limit=2)
    later = make_events_at(5)
    add_events(engine, *later)
    with Session(engine) as session:  # a new transaction, which sees the new row
        rest = list_invocations(session, limit=2, after=page.next_cursor)
    assert [item.event_id for item in rest.items] == [first[2].event_id, later[0].event_id]


def make_events_at(*minutes: int) -> list[UsageEvent]:
    return [make_event(timestamp=BASE_TIME + timedelta(minutes=m)) for m in minutes]


def test_empty_listing(engine: Engine) -> None:
    with Session(engine) as session:
        page = list_invocations(session)
        assert (page.items, page.next_cursor, page.has_next) == ((), None, False)
        assert count_invocations(session) == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        encode_cursor("tasks", ["2026-05-01T10:00:00+00:00", "x"]),
        encode_cursor("invocations", ["2026-05-01T10:00:00", "agent", str(BASE_TIME)]),
        encode_cursor("invocations", ["yesterday", "agent", "0" * 32]),
        encode_cursor("invocations", ["2026-05-01T10:00:00+00:00", "robot", "0" * 32]),
        encode_cursor("invocations", ["2026-05-01T10:00:00+00:00", "agent", "nope"]),
    ],
)
def test_a_bad_cursor_names_after(engine: Engine, cursor: str) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as raised:
        list_invocations(session, after=cursor)
    assert raised.value.field == "after"


def test_a_bad_limit_names_limit(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as raised:
        list_invocations(session, limit=0)
    assert raised.value.field == "limit"


def test_a_cursor_past_the_range_ends_the_listing(engine: Engine) -> None:
    add_events(engine, *make_events_at(0, 10))
    until = BASE_TIME + timedelta(minutes=5)
    cursor = encode_cursor(
        "invocations", [(until + timedelta(minutes=1)).isoformat(), "agent", "0" * 32]
    )
    with Session(engine) as session:
        page = list_invocations(session, filter=UsageFilter(until=until), after=cursor)
    assert page.items == ()
