"""usage_by_model and usage_by_project: where the money goes, from the rollups for whole
buckets and the raw rows at the edges and for running invocations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import Status, UsageEvent
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import reading_raw_rows, usage_by_model, usage_by_project
from tests import expected
from tests.factories import add_events, make_event

START = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)  # not on an hour: raw rows at the edges


def spread() -> list[UsageEvent]:
    """Three models (and none), two projects (and none), partly priced, one running."""
    models = ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", None]
    projects = ["web", "api", None]
    events = [
        make_event(
            timestamp=START + timedelta(hours=7 * i, minutes=i),
            name=f"agent-{i % 3}",
            kind="skill" if i % 5 == 0 else "agent",
            model=models[i % 4],
            project_id=projects[i % 3],
            status=Status.FAILED if i % 7 == 0 else Status.COMPLETED,
            cost_usd=None if i % 4 == 3 or i % 6 == 0 else 0.125 * (i + 1),
            cache_read_tokens=1_000 * i,
            cache_creation_tokens=10 * i,
        )
        for i in range(40)
    ]
    events.append(
        make_event(timestamp=START + timedelta(days=3), status=Status.RUNNING, project_id="web")
    )
    return events


def _order(groups: dict[str | None, list[UsageEvent]]) -> list[str | None]:
    """Most costly first, unknown cost last, then most run, then by key (None last)."""

    def key(name: str | None) -> tuple:
        cost = expected.totals(groups[name])["total_cost_usd"]
        return (cost is None, -(cost or 0.0), -len(groups[name]), name is None, name or "")

    return sorted(groups, key=key)


@pytest.mark.parametrize(
    ("query", "field", "key"),
    [(usage_by_model, "model", "model"), (usage_by_project, "project_id", "project_id")],
)
def test_breakdown_rows_and_totals(engine: Engine, query, field: str, key: str) -> None:
    events = spread()
    add_events(engine, *events)
    since, until = START + timedelta(hours=5), START + timedelta(days=9, minutes=17)
    inside = [e for e in events if since <= e.timestamp < until]
    groups: dict[str | None, list[UsageEvent]] = {}
    for event in inside:
        groups.setdefault(getattr(event, field), []).append(event)

    scope = UsageFilter(since=since, until=until)
    with Session(engine) as session:
        result = query(session, filter=scope)
        with reading_raw_rows():
            raw = query(session, filter=scope)
    assert [getattr(row, key) for row in result.rows] == _order(groups)
    for row in result.rows:
        expected.assert_totals(row, groups[getattr(row, key)])
    expected.assert_totals(result.totals, inside)
    assert [expected.totals_of(row) for row in raw.rows] == [
        pytest.approx(expected.totals_of(row)) for row in result.rows
    ]


def test_breakdown_narrowed_by_project_and_kind(engine: Engine) -> None:
    events = spread()
    add_events(engine, *events)
    web_agents = [e for e in events if e.project_id == "web" and e.kind.value == "agent"]
    with Session(engine) as session:
        result = usage_by_model(session, filter=UsageFilter(project_id="web", kind="agent"))
    assert {row.model for row in result.rows} == {e.model for e in web_agents}
    expected.assert_totals(result.totals, web_agents)


def test_breakdown_of_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        result = usage_by_project(session, filter=UsageFilter())
    assert result.rows == ()
    expected.assert_totals(result.totals, [])
