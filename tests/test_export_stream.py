"""The export's stream from the query layer: every invocation exactly once, in the listing's
order, across batch boundaries (ties on an instant included), with the listing's filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.models.filters import UsageFilter
from claude_api.models.queries import iter_invocations, list_invocations
from tests.factories import add_events, make_event

START = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def mixed(engine: Engine) -> list:
    # Three invocations per instant, agents and skills, so batches end inside a tie.
    events = [
        make_event(
            kind="skill" if i % 3 == 2 else "agent",
            name=f"name-{i % 4}",
            project_id=f"p{i % 2}",
            timestamp=START + timedelta(minutes=i // 3),
        )
        for i in range(47)
    ]
    add_events(engine, *events)
    return events


def paged(session: Session, scope: UsageFilter) -> list:
    items, after = [], None
    while True:
        page = list_invocations(session, filter=scope, limit=5, after=after)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        after = page.next_cursor


@pytest.mark.parametrize(
    "scope",
    [
        UsageFilter(),
        UsageFilter(kind="skill"),
        UsageFilter(project_id="p1", since=START + timedelta(minutes=2)),
        UsageFilter(name="name-1", until=START + timedelta(minutes=10)),
    ],
)
@pytest.mark.parametrize("batch", [1, 4, 7, 1000])
def test_the_stream_is_the_listing(engine: Engine, mixed: list, scope: UsageFilter, batch: int):
    with Session(engine) as session:
        streamed = list(iter_invocations(session, filter=scope, batch=batch))
        assert streamed == paged(session, scope)
    wanted = {
        event.event_id
        for event in mixed
        if (scope.kind is None or event.kind == scope.kind)
        and (scope.project_id is None or event.project_id == scope.project_id)
        and (scope.name is None or event.name == scope.name)
        and (scope.since is None or event.timestamp >= scope.since)
        and (scope.until is None or event.timestamp < scope.until)
    }
    assert [record.event_id for record in streamed if record.event_id in wanted] == [
        record.event_id for record in streamed
    ]
    assert {record.event_id for record in streamed} == wanted
    assert len(streamed) == len(wanted)
    order = [(r.timestamp, r.kind.value, r.event_id) for r in streamed]
    assert order == sorted(order)
