"""Synthetic data: deterministic, valid events, consistent parent links, stored by the CLI."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.demo import batches_ahead, generate_events
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


def test_tasks_come_in_the_order_they_started() -> None:
    events = list(generate_events(20_000, seed=2, end=END, days=14))
    starts: dict[str, datetime] = {}
    for event in events:
        starts.setdefault(event.task_id, event.timestamp)
    task_starts = list(starts.values())
    assert task_starts == sorted(task_starts)
    numbers = [int(task.rsplit("-", 1)[1]) for task in starts]
    assert numbers == list(range(1, len(numbers) + 1))
    # Ids are made in time order too, so a writer appends to the id indexes.
    main_ids = [event.event_id for event in events if event.parent_id is None]
    assert main_ids == sorted(main_ids)
    # Within a task the invocations come in the order they started, each within two minutes of
    # the task's start, so the whole stream is in time order up to that overlap.
    previous: UsageEvent | None = None
    for event in events:
        began = starts[event.task_id]
        assert began <= event.timestamp < began + timedelta(minutes=2)
        if previous is not None:
            if previous.task_id == event.task_id:
                assert previous.timestamp <= event.timestamp
            assert event.timestamp > previous.timestamp - timedelta(minutes=2)
        previous = event


def test_every_day_has_its_share_with_weekday_and_working_hour_peaks() -> None:
    events = list(generate_events(30_000, seed=4, end=END, days=28))
    per_day = Counter(event.timestamp.date() for event in events)
    first_day = (END - timedelta(days=28)).date()
    assert min(per_day) == first_day
    assert max(per_day) <= END.date()  # the last day's late tasks may end past midnight
    assert len({day for day in per_day if day < END.date()}) == 28
    weekdays = [n for day, n in per_day.items() if day < END.date() and day.weekday() < 5]
    weekends = [n for day, n in per_day.items() if day < END.date() and day.weekday() >= 5]
    assert min(weekdays) > 2 * max(weekends)
    per_hour = Counter(event.timestamp.hour for event in events)
    assert sum(per_hour[h] for h in range(10, 18)) > 5 * sum(per_hour[h] for h in range(0, 8))


def test_exact_count_for_any_size() -> None:
    for count in (1, 2, 7, 99, 1_001):
        assert len(list(generate_events(count, seed=count, end=END, days=120))) == count
    assert len(list(generate_events(500, seed=1, end=END, days=1))) == 500


def test_batches_ahead_keeps_every_event_in_order() -> None:
    events = list(generate_events(2_345, seed=2, end=END))
    batches = list(batches_ahead(iter(events), 1_000))
    assert [len(batch) for batch in batches] == [1_000, 1_000, 345]
    assert [event for batch in batches for event in batch] == events
    assert list(batches_ahead(iter([]), 10)) == []
