"""Invocations purged from the raw rows that the rollups still count: the query layer's count,
the export's note and the task lookup's message say exactly how many."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.config import Settings
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import UsageFilter
from claude_api.models.queries.purged import PurgedInvocations, count_purged_invocations
from claude_api.models.retention import purge
from claude_api.server.app import create_app
from tests.factories import add_events, make_event
from tests.live_server import serve

NOW = datetime(2026, 6, 15, 13, 45, tzinfo=UTC)
HORIZON = datetime(2026, 5, 16, tzinfo=UTC)  # the UTC midnight 30 days before NOW's day
NAMES = {Kind.AGENT: ["code-reviewer", "Explore"], Kind.SKILL: ["pdf", "xlsx"]}
STATUSES = [Status.COMPLETED, Status.COMPLETED, Status.FAILED, Status.RUNNING]


def written() -> list[UsageEvent]:
    """Agents and skills of two projects and none, finished and running, at any minute from 45
    days before the horizon to 15 days after it; and one task wholly before it."""
    rng = random.Random(12)
    events = []
    for number in range(400):
        kind = rng.choice(list(Kind))
        status = rng.choice(STATUSES)
        events.append(
            make_event(
                kind=kind,
                name=rng.choice(NAMES[kind]),
                task_id=f"task-{number}",
                project_id=rng.choice(["web", "api", None]),
                status=status,
                error_message="boom" if status is Status.FAILED else None,
                timestamp=HORIZON + timedelta(minutes=rng.randrange(-45 * 1440, 15 * 1440)),
            )
        )
    old = HORIZON - timedelta(days=3, hours=5)
    main = make_event(task_id="task-old", project_id="web", timestamp=old)
    skill = make_event(kind="skill", name="pdf", task_id="task-old", parent_id=main.event_id)
    return [*events, main, skill.model_copy(update={"project_id": "web", "timestamp": old})]


def purged_count(events: list[UsageEvent], filter: UsageFilter) -> int:
    """How many of `events` matching `filter` are finished and started before the horizon."""
    return sum(
        event.status is not Status.RUNNING and event.timestamp < HORIZON and matches(event, filter)
        for event in events
    )


def matches(event: UsageEvent, filter: UsageFilter) -> bool:
    return (
        (filter.kind is None or event.kind is filter.kind)
        and (filter.name is None or event.name == filter.name)
        and (filter.project_id is None or event.project_id == filter.project_id)
        and (filter.status is None or event.status is filter.status)
        and (filter.since is None or event.timestamp >= filter.since)
        and (filter.until is None or event.timestamp < filter.until)
    )


@pytest.fixture
def events(engine: Engine) -> list[UsageEvent]:
    events = written()
    add_events(engine, *events)
    return events


def count(engine: Engine, filter: UsageFilter) -> PurgedInvocations | None:
    with Session(engine) as session:
        return count_purged_invocations(session, filter=filter)


FILTERS = [
    UsageFilter(),
    UsageFilter(kind=Kind.AGENT),
    UsageFilter(kind=Kind.SKILL, name="pdf"),
    UsageFilter(project_id="web"),
    UsageFilter(kind=Kind.AGENT, status=Status.FAILED),
    UsageFilter(since=datetime(2026, 4, 20, tzinfo=UTC), until=datetime(2026, 5, 25, tzinfo=UTC)),
    UsageFilter(since=datetime(2026, 4, 20, 7, tzinfo=UTC), until=datetime(2026, 5, 2, tzinfo=UTC)),
    UsageFilter(name="Explore", since=datetime(2026, 5, 1, tzinfo=UTC), tz="Europe/Paris"),
]


def test_the_count_is_every_finished_invocation_purged_that_the_range_covers(
    engine: Engine, events: list[UsageEvent]
) -> None:
    assert count(engine, UsageFilter()) is None  # nothing purged yet
    result = purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    assert result.raw_before == HORIZON and result.agent_rows + result.skill_rows > 0
    for filter in FILTERS:
        expected = purged_count(events, filter)
        assert count(engine, filter) == PurgedInvocations(HORIZON, expected), filter
    assert purged_count(events, UsageFilter()) > 100
    after = UsageFilter(since=HORIZON)
    assert count(engine, after) is None  # the range lies wholly after the horizon
    running = UsageFilter(status=Status.RUNNING)
    assert count(engine, running) == PurgedInvocations(HORIZON, 0)  # never rolled up


def run_cli(*args: str, **env: str | None) -> tuple[str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", **env})
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout, result.stderr


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, retention_days=30)
    with serve(create_app(settings, purge_delay=3600)) as base_url:
        yield base_url


@pytest.mark.parametrize("surface", ["http", "in-process"])
def test_an_export_over_a_purged_period_says_how_many_invocations_it_lacks(
    engine: Engine, events: list[UsageEvent], server: str, tmp_path: Path, surface: str
) -> None:
    env = {
        "CLAUDE_API_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "CLAUDE_API_URL": server if surface == "http" else None,
        "CLAUDE_API_KEY": None,
    }
    export = tmp_path / "agents.jsonl"
    arguments = ["analytics", "export", "--output", str(export), "--kind", "agent"]
    _, before_purge = run_cli(*arguments, "--since", "2026-04-20", **env)
    assert "note:" not in before_purge

    purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    _, said = run_cli(*arguments, "--since", "2026-04-20", **env)
    scope = UsageFilter(kind=Kind.AGENT, since=datetime(2026, 4, 20, tzinfo=UTC))
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    remaining = [e for e in events if matches(e, scope) and e.timestamp >= HORIZON]
    assert len(rows) == len(remaining)
    assert (
        f"note: {purged_count(events, scope):,} invocations before 2026-05-16 UTC were purged "
        "from the raw rows (the rollups still count them); the export holds the "
        f"{len(remaining):,} that remain"
    ) in said

    # A range wholly after the horizon lacks nothing.
    _, after = run_cli(*arguments, "--since", "2026-05-16", **env)
    assert "note:" not in after


def test_a_task_lookup_of_a_purged_period_says_how_many_invocations_went(
    engine: Engine, events: list[UsageEvent], server: str
) -> None:
    purge(engine, raw_retention_days=30, rollup_retention_days=None, now=NOW)
    expected = (
        "no invocation of task 'task-old' has been recorded; invocations that started before "
        "2026-05-16T00:00:00Z have been purged from the raw rows (the rollups still count "
        f"{purged_count(events, UsageFilter()):,} of them)"
    )
    rest = httpx.get(f"{server}/v1/tasks/task-old")
    assert rest.status_code == 404 and rest.json()["message"] == expected
    query = '{ task(id: "task-old") { id } }'
    graphql = httpx.post(f"{server}/graphql", json={"query": query}).json()
    assert graphql["data"] == {"task": None}
    assert [error["message"] for error in graphql["errors"]] == [expected]
