"""Synthetic data: deterministic, valid events, consistent parent links, stored by the CLI."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.demo import generate_events
from claude_api.models.db import make_engine
from claude_api.models.events import Kind, UsageEvent

END = datetime(2026, 6, 1, tzinfo=UTC)


def test_same_seed_same_events_and_exact_count() -> None:
    first = list(generate_events(2_000, seed=3, end=END))
    assert len(first) == 2_000
    assert first == list(generate_events(2_000, seed=3, end=END))
    assert first != list(generate_events(2_000, seed=4, end=END))


def test_events_are_valid_and_linked() -> None:
    events = list(generate_events(5_000, seed=1, end=END, days=30))
    by_id = {event.event_id: event for event in events}
    assert len(by_id) == len(events)
    for event in events:
        assert UsageEvent.model_validate(event.model_dump()) == event
        assert END - timedelta(days=30) <= event.timestamp < END + timedelta(days=1)
        if event.parent_id is not None and event.parent_id in by_id:
            parent = by_id[event.parent_id]
            assert parent.kind is Kind.AGENT
            assert parent.task_id == event.task_id
        if event.kind is Kind.SKILL:
            assert event.parent_id is not None
    popularity = Counter(event.name for event in events if event.kind is Kind.AGENT)
    counts = sorted(popularity.values(), reverse=True)
    assert counts[0] > 5 * counts[-1]  # skewed, not uniform
    failed = sum(event.status == "failed" for event in events)
    assert 0 < failed < len(events) / 4
    assert all(event.error_message for event in events if event.status == "failed")


def test_demo_command_stores_the_events_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(
            app, ["demo", "--events", "3000", "--seed", "5"], env={"CLAUDE_API_DATABASE_URL": url}
        )
        assert result.exit_code == 0, result.output
    engine = make_engine(url)
    with engine.connect() as connection:
        agents = connection.execute(sa.text("SELECT count(*) FROM agent_usage")).scalar_one()
        skills = connection.execute(sa.text("SELECT count(*) FROM skill_usage")).scalar_one()
    engine.dispose()
    assert agents + skills == 3_000
