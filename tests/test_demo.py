"""Synthetic data: deterministic, valid events, consistent parent links, stored by the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.demo import batches_ahead, generate_events
from claude_api.events import CostSource, Kind, UsageEvent
from claude_api.models.db import make_engine
from claude_api.pricing import ModelRates, model_rates, request_cost

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


# ---- realism: names, models, tokens and prices as Claude Code's -----------------------------

NOW = datetime.now(UTC)


def realistic_events() -> list[UsageEvent]:
    return list(generate_events(20_000, seed=8, end=NOW, days=60))


def test_agent_and_skill_names_are_real_looking_without_numbered_copies() -> None:
    events = realistic_events()
    agents = Counter(event.name for event in events if event.kind is Kind.AGENT)
    skills = Counter(event.name for event in events if event.kind is Kind.SKILL)
    assert not [name for name in [*agents, *skills] if re.search(r"-\d+$", name)]
    # A session's main thread is `main`, as the transcript import names it, and the most run.
    assert agents.most_common(1)[0][0] == "main"
    mains = Counter(event.name for event in events if event.parent_id is None)
    assert mains["main"] > 0.8 * sum(mains.values())
    assert {"general-purpose", "Explore", "Plan", "code-reviewer", "test-runner"} <= set(agents)
    assert len(agents) >= 10 and len(skills) >= 10


def total_tokens(event: UsageEvent) -> int:
    parts = (
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_creation_tokens,
    )
    assert all(part is not None for part in parts), event
    return sum(parts)  # type: ignore[arg-type]


def test_tokens_are_cache_heavy_like_claude_codes() -> None:
    with_tokens = [event for event in realistic_events() if event.input_tokens is not None]
    assert all(event.cache_read_tokens and event.cache_creation_tokens for event in with_tokens)
    total = sum(total_tokens(event) for event in with_tokens)
    reads = sum(event.cache_read_tokens or 0 for event in with_tokens) / total
    writes = sum(event.cache_creation_tokens or 0 for event in with_tokens) / total
    uncached = sum(event.input_tokens or 0 for event in with_tokens) / total
    output = sum(event.output_tokens or 0 for event in with_tokens) / total
    assert 0.90 <= reads <= 0.98
    assert 0.01 <= writes <= 0.08
    assert uncached < 0.001 and 0.001 < output < 0.03


def base_price(rates: ModelRates, event: UsageEvent) -> float:
    """The price of the event's tokens at the model's base rates (requests below the
    long-context tier), with genai-prices' fallbacks for a missing cache price."""
    write = rates.cache_write or rates.input
    read = rates.cache_read or rates.input
    assert rates.output is not None
    return (
        (event.input_tokens or 0) * rates.input.base
        + (event.output_tokens or 0) * rates.output.base
        + (event.cache_read_tokens or 0) * read.base
        + (event.cache_creation_tokens or 0) * write.base
    )


def test_costs_are_the_pricing_tables_price_of_the_tokens() -> None:
    events = realistic_events()
    task_day = {e.task_id: e.timestamp.date() for e in reversed(events) if e.parent_id is None}
    priced = [event for event in events if event.cost_source is CostSource.COMPUTED]
    assert len(priced) > len(events) / 2
    untiered = 0
    for event in priced:
        assert event.model is not None and event.model.startswith("claude-")
        rates = model_rates(event.model, task_day[event.task_id])
        assert rates is not None
        assert event.cost_usd == pytest.approx(base_price(rates, event), rel=1e-9)
        if not rates.input.tiers:  # priced as one request, the tokens cost the same
            untiered += 1
            at = datetime.combine(task_day[event.task_id], datetime.min.time(), UTC)
            whole = request_cost(
                event.model,
                input_tokens=event.input_tokens or 0,
                output_tokens=event.output_tokens or 0,
                cache_read_tokens=event.cache_read_tokens or 0,
                cache_creation_tokens=event.cache_creation_tokens or 0,
                at=at,
            )
            assert event.cost_usd == pytest.approx(whole, rel=1e-9)
    assert untiered > 0
    models = Counter(event.model for event in priced)
    assert len(models) >= 4  # opus, sonnet and haiku of recent generations


def test_unpriced_models_and_skills_without_tokens_have_no_cost() -> None:
    events = realistic_events()
    unpriced = [event for event in events if event.cost_source is CostSource.UNPRICED]
    assert unpriced and all(event.cost_usd is None for event in unpriced)
    assert all(event.input_tokens and event.cache_read_tokens for event in unpriced)
    assert all(model_rates(event.model or "", NOW.date()) is None for event in unpriced)
    skills = [event for event in events if event.kind is Kind.SKILL]
    inline = [event for event in skills if event.input_tokens is None]
    forked = [event for event in skills if event.input_tokens is not None]
    assert inline and forked
    assert all(e.cost_usd is None and e.cost_source is None and e.model is None for e in inline)
    assert any(event.cost_usd is not None for event in forked)
    # A skill's name says whether it runs forked: every invocation of it does, or none.
    forked_names = {event.name for event in forked}
    assert forked_names.isdisjoint(event.name for event in inline)


def test_stored_demo_rows_keep_unknown_costs_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"CLAUDE_API_DATABASE_URL": url, "CLAUDE_API_RETENTION_DAYS": "90"}
    result = CliRunner().invoke(app, ["demo", "--events", "3000", "--seed", "2"], env=env)
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    with engine.connect() as connection:
        found = connection.execute(
            sa.text(
                "SELECT cost_source, count(*), count(cost_usd), count(cache_read_tokens) "
                "FROM skill_usage GROUP BY cost_source UNION ALL "
                "SELECT 'agent ' || cost_source, count(*), count(cost_usd), "
                "count(cache_read_tokens) FROM agent_usage GROUP BY cost_source"
            )
        ).all()
    engine.dispose()
    rows = {source: (count, costs, reads) for source, count, costs, reads in found}
    inline = rows[None]
    assert inline[0] > 0 and inline[1:] == (0, 0)  # no cost and no tokens: NULL, never 0
    assert rows["computed"][0] == rows["computed"][1] == rows["computed"][2] > 0
    for source in ("agent unpriced", "unpriced"):
        if source in rows:
            assert rows[source][1] == 0 and rows[source][2] == rows[source][0]
    assert rows["agent unpriced"][0] > 0
    assert rows["agent computed"][0] == rows["agent computed"][1] > 0


def test_bare_demo_fills_a_new_users_default_database(tmp_path: Path) -> None:
    """A new user's first command, `claude-api demo` with no option and a fresh HOME, fills the
    default database with enough data for every command to answer."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLAUDE_API_", "XDG_"))
    }
    env |= {"HOME": str(tmp_path), "COLUMNS": "60"}
    claude_api = Path(sys.executable).parent / "claude-api"
    demo = subprocess.run([claude_api, "demo"], env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    assert "recorded 20,000 demo events" in demo.stderr + demo.stdout
    board = subprocess.run(
        [claude_api, "agents", "leaderboard", "--json"], env=env, capture_output=True, text=True
    )
    assert board.returncode == 0, board.stderr
    assert board.stdout.strip().startswith(("[", "{")) and "Explore" in board.stdout
