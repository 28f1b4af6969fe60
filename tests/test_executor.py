"""The executor against a fake `claude` that replays scripted stream-json runs.

Rows are read back from the real tables on SQLite and PostgreSQL; expected tokens and costs are
computed here from the replayed messages and Anthropic's published prices.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from claude_api.config import Settings
from claude_api.events import Status, UsageEvent
from claude_api.executor import TaskResult, run_task
from claude_api.executor.task_session import InvalidTask, TaskIdTaken
from claude_api.importer.settlement import IMPORT_NAMESPACE
from claude_api.models.db import make_engine
from claude_api.models.tables import AgentUsage, SkillUsage, TaskSession
from claude_api.plugins.manager import get_plugin_manager
from claude_api.tracking import Tracker, build_tracker
from tests.factories import add_events, make_event
from tests.fake_claude import FakeClaude
from tests.fake_claude import scenarios as sc

MTOK = 1_000_000
# Published USD per million tokens: input, output, cache read, cache write (5 minutes).
PRICES = {sc.SONNET: (3.0, 15.0, 0.30, 3.75), sc.HAIKU: (1.0, 5.0, 0.10, 1.25)}
UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"


# ---- expectations, from the replayed messages -------------------------------------------------


def responses(script: sc.Script, parent: str | None) -> dict[str, tuple[str, dict[str, Any]]]:
    """The API responses streamed for `parent` (None: the main loop): model and usage by
    message id, keeping the message with the largest output count."""
    by_id: dict[str, tuple[str, dict[str, Any]]] = {}
    for message in script.messages:
        if message["type"] != "assistant" or message["parent_tool_use_id"] != parent:
            continue
        api = message["message"]
        seen = by_id.get(api["id"])
        if seen is None or api["usage"]["output_tokens"] > seen[1]["output_tokens"]:
            by_id[api["id"]] = (api["model"], api["usage"])
    return by_id


def tokens_of(usages: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "input_tokens": sum(u["input_tokens"] for u in usages),
        "output_tokens": sum(u["output_tokens"] for u in usages),
        "cache_read_tokens": sum(u["cache_read_input_tokens"] for u in usages),
        "cache_creation_tokens": sum(u["cache_creation_input_tokens"] for u in usages),
    }


def price(model: str, usage: dict[str, Any]) -> float:
    p_in, p_out, p_read, p_write = PRICES[model]
    return (
        usage["input_tokens"] * p_in
        + usage["output_tokens"] * p_out
        + usage["cache_read_input_tokens"] * p_read
        + usage["cache_creation_input_tokens"] * p_write
    ) / MTOK


def streamed_cost(script: sc.Script, parent: str | None) -> float:
    return sum(price(model, usage) for model, usage in responses(script, parent).values())


def streamed_tokens(script: sc.Script, parent: str | None) -> dict[str, int]:
    return tokens_of([usage for _, usage in responses(script, parent).values()])


# ---- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


def run(
    fake: FakeClaude,
    script: sc.Script,
    tracker: Tracker | None,
    prompt: str = "Fix lint",
    **options: Any,
) -> TaskResult:
    settings = Settings(claude_bin=str(fake.install(script)))
    result = run_task(prompt, tracker=tracker, settings=settings, **options)
    if tracker is not None:
        assert tracker.flush(30)
    return result


def rows(engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(table))]


def agent_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    found = rows(engine, AgentUsage.__table__)
    by_name = {row["agent_name"]: row for row in found}
    assert len(by_name) == len(found)
    return by_name


def assert_spend(row: dict[str, Any], tokens: dict[str, int], cost: float | None) -> None:
    assert {key: row[key] for key in tokens} == tokens
    if cost is None:
        assert row["cost_usd"] is None
    else:
        assert row["cost_usd"] == pytest.approx(cost, rel=1e-9, abs=1e-12)


def session_event_id(session_id: str, key: str) -> uuid.UUID:
    """The event id the transcript import gives call `key` (a tool use id, or `main`) of a
    session, which the executor's rows must carry too."""
    return uuid.uuid5(uuid.uuid5(IMPORT_NAMESPACE, session_id), key)


def child_id(task_row: dict[str, Any], tool_use_id: str) -> uuid.UUID:
    return session_event_id(task_row["task_id"], tool_use_id)


def live_group_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that still run (zombies waiting for a reaper do not count)."""
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


# ---- successful runs -------------------------------------------------------------------------


def test_success_tracks_task_subagents_and_skill(
    fake: FakeClaude, tracker: Tracker, engine: Engine
) -> None:
    script = sc.success()
    task_id = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c"
    result = run(fake, script, tracker, project_id="proj-1", task_id=task_id)

    assert result.status is Status.COMPLETED
    assert result.ok
    assert (result.result, result.error, result.exit_code) == (sc.SUCCESS_TEXT, None, 0)
    assert result.cost_usd == sc.SUCCESS_TOTAL_COST
    # The task ran as the Claude Code session its id names.
    assert (result.session_id, result.model, result.num_turns) == (task_id, sc.SONNET, 6)
    assert (result.task_id, result.agent) == (task_id, "main")

    agents = agent_rows(engine)
    assert set(agents) == {"main", "code-reviewer", "Explore"}
    task, reviewer, explorer = agents["main"], agents["code-reviewer"], agents["Explore"]
    assert task["event_id"] == result.event_id == session_event_id(task_id, "main")
    for row in agents.values():
        assert row["status"] == Status.COMPLETED
        assert (row["task_id"], row["project_id"], row["source"]) == (
            task_id,
            "proj-1",
            "executor",
        )
        assert row["finished_at"] >= row["timestamp"]
        assert row["error_message"] is None
    assert task["parent_id"] is None
    assert (task["model"], task["cost_source"]) == (sc.SONNET, "reported")
    assert reviewer["event_id"] == child_id(task, sc.REVIEWER)
    assert explorer["event_id"] == child_id(task, sc.EXPLORER)
    assert reviewer["parent_id"] == explorer["parent_id"] == task["event_id"]

    reviewer_cost = streamed_cost(script, sc.REVIEWER)
    explorer_cost = streamed_cost(script, sc.EXPLORER)
    assert_spend(reviewer, streamed_tokens(script, sc.REVIEWER), reviewer_cost)
    assert_spend(explorer, streamed_tokens(script, sc.EXPLORER), explorer_cost)
    # msg_C1 was streamed twice (output 2, then 88): counted once, with 88.
    assert reviewer["output_tokens"] == 88 + 410
    for row in (reviewer, explorer):
        assert (row["model"], row["cost_source"]) == (sc.HAIKU, "computed")

    final = script.messages[-1]
    task_tokens = tokens_of([final["usage"]])
    assert_spend(task, task_tokens, sc.SUCCESS_TOTAL_COST - reviewer_cost - explorer_cost)
    # The rows' costs add up to what the run reported, each counted once.
    total = sum(row["cost_usd"] for row in agents.values())
    assert total == pytest.approx(sc.SUCCESS_TOTAL_COST)

    (skill,) = rows(engine, SkillUsage.__table__)
    assert (skill["skill_name"], skill["status"], skill["task_id"]) == (
        "lint-fix",
        "completed",
        task_id,
    )
    assert skill["parent_id"] == reviewer["event_id"]
    assert skill["event_id"] == child_id(task, sc.LINT_SKILL)
    assert skill["model"] == sc.HAIKU
    assert skill["cost_usd"] is None


def test_subagent_edge_cases(fake: FakeClaude, tracker: Tracker, engine: Engine) -> None:
    script = sc.subagent_edge_cases()
    result = run(fake, script, tracker)
    assert result.status is Status.COMPLETED

    agents = agent_rows(engine)
    assert set(agents) == {
        "main",
        "general-purpose",
        "researcher",
        "planner",
        "mystery",
        "sleeper",
    }
    task = agents["main"]
    for name, row in agents.items():
        if name != "main":
            assert row["parent_id"] == task["event_id"]

    failing = agents["general-purpose"]
    assert failing["status"] == "failed"
    assert "Agent terminated early due to an API error: overloaded" in failing["error_message"]
    assert_spend(failing, streamed_tokens(script, sc.FAILING), streamed_cost(script, sc.FAILING))

    background = agents["researcher"]  # finished by its task notification
    assert (background["status"], background["error_message"]) == ("completed", None)
    assert_spend(
        background, streamed_tokens(script, sc.BACKGROUND), streamed_cost(script, sc.BACKGROUND)
    )

    planner = agents["planner"]  # nothing streamed: the tool result's own usage and duration
    assert planner["status"] == "completed"
    assert_spend(planner, tokens_of([sc.PLANNER_USAGE]), price(sc.HAIKU, sc.PLANNER_USAGE))
    assert planner["duration_seconds"] == pytest.approx(4.2)
    assert planner["model"] == sc.HAIKU

    mystery = agents["mystery"]
    assert mystery["status"] == "completed"
    assert (mystery["model"], mystery["cost_source"]) == (sc.UNKNOWN_MODEL, "unpriced")
    assert_spend(mystery, streamed_tokens(script, sc.UNPRICED), None)

    sleeper = agents["sleeper"]
    assert sleeper["status"] == "failed"
    assert sleeper["error_message"] == "task ended before the subagent finished"
    assert_spend(
        sleeper, streamed_tokens(script, sc.ABANDONED), streamed_cost(script, sc.ABANDONED)
    )

    subagents_cost = (
        streamed_cost(script, sc.FAILING)
        + streamed_cost(script, sc.BACKGROUND)
        + price(sc.HAIKU, sc.PLANNER_USAGE)
        + streamed_cost(script, sc.ABANDONED)
    )
    assert_spend(
        task, tokens_of([script.messages[-1]["usage"]]), sc.EDGE_TOTAL_COST - subagents_cost
    )

    (skill,) = rows(engine, SkillUsage.__table__)
    assert (skill["skill_name"], skill["status"]) == ("deploy", "completed")
    assert skill["parent_id"] == task["event_id"]


def test_command_line_given_to_claude(fake: FakeClaude) -> None:
    with_agent = run(fake, sc.simple(), None, prompt="Review it", agent="code-reviewer")
    without = run(fake, sc.simple(), None, prompt="Review it")
    dashed = run(fake, sc.simple(), None, prompt="--help me")

    assert with_agent.ok and without.ok and dashed.ok
    assert with_agent.agent == "code-reviewer"
    first, second, third = fake.calls()
    assert first["argv"] == [
        "-p",
        "Review it",
        "--output-format",
        "stream-json",
        "--verbose",
        "--session-id",
        with_agent.task_id,
        "--agent",
        "code-reviewer",
    ]
    assert first["agent"] == "code-reviewer"
    assert second["argv"] == [
        "-p",
        "Review it",
        "--output-format",
        "stream-json",
        "--verbose",
        "--session-id",
        without.task_id,
    ]
    assert second["agent"] is None
    assert without.agent == "main"
    assert len({with_agent.task_id, without.task_id, dashed.task_id}) == 3
    assert third["prompt"] == "--help me"
    assert third["pgid"] == third["pid"]  # its own process group


# ---- failed runs -----------------------------------------------------------------------------


def test_error_result(fake: FakeClaude, tracker: Tracker, engine: Engine) -> None:
    script = sc.error_max_turns()
    result = run(fake, script, tracker)

    assert result.status is Status.FAILED
    assert (result.exit_code, result.cost_usd, result.result) == (1, 0.031, None)
    assert "error_max_turns" in result.error
    assert sc.MAX_TURNS_ERROR in result.error

    (task,) = agent_rows(engine).values()
    assert (task["status"], task["error_message"]) == ("failed", result.error)
    assert_spend(task, tokens_of([script.messages[-1]["usage"]]), 0.031)


def test_crash_mid_stream(fake: FakeClaude, tracker: Tracker, engine: Engine) -> None:
    script = sc.crash()
    result = run(fake, script, tracker)

    assert result.status is Status.FAILED
    assert (result.exit_code, result.cost_usd) == (137, None)
    assert "exited with code 137" in result.error
    assert sc.CRASH_STDERR.strip() in result.error

    agents = agent_rows(engine)
    task, reviewer = agents["main"], agents["code-reviewer"]
    assert (task["status"], task["error_message"]) == ("failed", result.error)
    # No result message: the main loop's streamed responses, priced here.
    assert_spend(task, streamed_tokens(script, None), streamed_cost(script, None))
    assert task["cost_source"] == "computed"
    assert reviewer["status"] == "failed"
    assert reviewer["error_message"] == "task ended before the subagent finished"
    assert_spend(
        reviewer,
        streamed_tokens(script, sc.CRASH_REVIEWER),
        streamed_cost(script, sc.CRASH_REVIEWER),
    )


def test_timeout_kills_the_process_group(
    fake: FakeClaude, tracker: Tracker, engine: Engine
) -> None:
    started = time.monotonic()
    result = run(fake, sc.hang(), tracker, timeout=1, kill_grace=0.5)
    elapsed = time.monotonic() - started

    assert result.status is Status.FAILED
    assert "timed out after 1s" in result.error
    assert result.exit_code is not None and result.exit_code < 0  # it ignored SIGTERM
    assert 1 <= elapsed < 10
    (call,) = fake.calls()
    deadline = time.monotonic() + 5
    while live_group_members(call["pgid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_group_members(call["pgid"]) == []

    (task,) = agent_rows(engine).values()
    assert (task["status"], task["error_message"]) == ("failed", result.error)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (sc.invalid_output(), "not valid stream-json: line 2 is not a JSON object"),
        (sc.no_result(), "ended without a result"),
    ],
    ids=["not-json", "no-result"],
)
def test_output_that_is_not_stream_json(
    fake: FakeClaude, tracker: Tracker, engine: Engine, script: sc.Script, message: str
) -> None:
    result = run(fake, script, tracker)

    assert result.status is Status.FAILED
    assert message in result.error
    (task,) = agent_rows(engine).values()
    assert (task["status"], task["error_message"]) == ("failed", result.error)


def test_missing_binary(tmp_path: Path, tracker: Tracker, engine: Engine) -> None:
    missing = tmp_path / "no-such-claude"
    task_id = str(uuid.uuid4())
    result = run_task(
        "hello", tracker=tracker, task_id=task_id, settings=Settings(claude_bin=str(missing))
    )
    assert tracker.flush(30)

    assert result.status is Status.FAILED
    assert result.exit_code is None
    assert "could not start Claude Code" in result.error
    assert str(missing) in result.error
    (task,) = agent_rows(engine).values()
    assert (task["status"], task["task_id"]) == ("failed", task_id)
    assert task["error_message"] == result.error


# ---- tracking never changes the outcome ------------------------------------------------------


def comparable(result: TaskResult) -> TaskResult:
    """The result without what differs between two runs: time, and the session (each run is a
    session of its own, whose id is the task id and names the event ids)."""
    return dataclasses.replace(
        result, duration_seconds=0.0, event_id=uuid.UUID(int=0), task_id="", session_id=""
    )


def test_store_failure_does_not_change_the_result(
    fake: FakeClaude, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = run(fake, sc.success(), tracker, project_id="p")
    engine = make_engine(UNREACHABLE_POSTGRES)
    broken = build_tracker(engine, load_entrypoints=False, retry_delays=())
    try:
        with caplog.at_level(logging.ERROR):
            result = run(fake, sc.success(), broken, project_id="p")
    finally:
        broken.close()
        engine.dispose()

    assert comparable(result) == comparable(healthy)
    assert broken.stats.stored == 0
    assert "not stored and dropped" in caplog.text


class ExplodingTracker(Tracker):
    """A tracker whose emit raises, as a broken third-party tracker might."""

    def emit(self, event: UsageEvent) -> None:
        raise RuntimeError("tracker exploded")


def test_raising_tracker_does_not_change_the_result(
    fake: FakeClaude, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = run(fake, sc.success(), None)
    exploding = ExplodingTracker(get_plugin_manager(load_entrypoints=False))
    with caplog.at_level(logging.ERROR):
        result = run(fake, sc.success(), exploding)

    assert comparable(result) == comparable(healthy)
    assert "tracking failed" in caplog.text


def test_database_lost_mid_run_keeps_the_result_and_logs(
    fake: FakeClaude,
    tracker: Tracker,
    engine: Engine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database goes away while the task runs (its tables dropped): the task's result is
    the healthy run's, the lost events are logged and counted, nothing raises."""
    healthy = run(fake, sc.success(), None)
    resume = tmp_path / "resume"
    script = dataclasses.replace(sc.success(), pause_after_line=3, resume_file=str(resume))

    def break_the_database() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not rows(engine, AgentUsage.__table__):
            time.sleep(0.02)  # the task's start is stored: the run is under way
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE agent_usage"))
            connection.execute(sa.text("DROP TABLE skill_usage"))
        resume.touch()

    saboteur = threading.Thread(target=break_the_database)
    saboteur.start()
    with caplog.at_level(logging.ERROR):
        result = run(fake, script, tracker)
    saboteur.join()

    assert comparable(result) == comparable(healthy)
    assert tracker.stats.stored >= 1
    assert tracker.stats.dropped >= 1
    assert "not stored and dropped" in caplog.text


# ---- the task's session ----------------------------------------------------------------------


def test_a_task_id_is_the_session_claude_code_runs(fake: FakeClaude, tracker: Tracker) -> None:
    given = "3F2A9C1E5B7D4E219A0C1D2E3F4A5B6C"  # a UUID in another spelling
    result = run(fake, sc.simple(), tracker, task_id=given, cwd=fake.directory)

    canonical = str(uuid.UUID(given))
    assert (result.task_id, result.session_id) == (canonical, canonical)
    (call,) = fake.calls()
    assert call["session_id"] == canonical
    assert fake.transcript_path(canonical, fake.directory).exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"task_id": "task-42"}, "task_id"),
        ({"task_id": "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c\x00"}, "task_id"),
        ({"prompt": "Fix\x00lint"}, "prompt"),
        ({"agent": "code\x00reviewer"}, "agent"),
        ({"project_id": "web\x00"}, "project_id"),
    ],
    ids=["not-a-uuid", "nul-task-id", "nul-prompt", "nul-agent", "nul-project"],
)
def test_input_claude_code_cannot_run_is_refused_before_anything_runs(
    fake: FakeClaude, tracker: Tracker, engine: Engine, options: dict[str, str], field: str
) -> None:
    options = {"prompt": "Fix lint", **options}  # a copy: the parameters are shared
    with pytest.raises(InvalidTask) as refused:
        run(fake, sc.simple(), tracker, registry=engine, **options)

    assert refused.value.field == field
    assert fake.calls() == []
    assert agent_rows(engine) == {}
    assert rows(engine, TaskSession.__table__) == []


def test_a_task_id_that_has_run_is_refused(
    fake: FakeClaude, tracker: Tracker, engine: Engine
) -> None:
    first = run(fake, sc.simple(), tracker, project_id="web", registry=engine)
    with pytest.raises(TaskIdTaken) as again:
        run(fake, sc.simple(), tracker, task_id=first.task_id, registry=engine)

    assert again.value.projects == {"web"}
    assert len(fake.calls()) == 1
    assert [row["task_id"] for row in agent_rows(engine).values()] == [first.task_id]


def test_a_task_id_recorded_by_another_producer_is_refused(
    fake: FakeClaude, tracker: Tracker, engine: Engine
) -> None:
    """A session imported (or sent over HTTP) and never registered by the executor."""
    session_id = str(uuid.uuid4())
    add_events(engine, make_event(task_id=session_id, project_id="api"))
    with pytest.raises(TaskIdTaken) as taken:
        run(fake, sc.simple(), tracker, task_id=session_id, project_id="web", registry=engine)

    assert taken.value.projects == {"api"}
    assert fake.calls() == []
    assert rows(engine, TaskSession.__table__) == []


def test_the_session_is_registered_with_the_names_its_rows_carry(
    fake: FakeClaude, tracker: Tracker, engine: Engine
) -> None:
    result = run(fake, sc.simple(), tracker, agent="lead", project_id="web", registry=engine)

    (registered,) = rows(engine, TaskSession.__table__)
    (task,) = agent_rows(engine).values()
    assert registered["session_id"] == task["task_id"] == result.task_id
    assert (registered["agent_name"], registered["project_id"]) == (
        task["agent_name"],
        task["project_id"],
    )
    assert (task["agent_name"], task["project_id"]) == ("lead", "web")


def test_claude_code_running_another_session_is_logged(
    fake: FakeClaude, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    script = dataclasses.replace(sc.simple(), keep_session=True)
    with caplog.at_level(logging.WARNING):
        result = run(fake, script, tracker)

    assert result.ok
    assert result.session_id == sc.SESSION != result.task_id
    assert f"Claude Code ran session {sc.SESSION} instead" in caplog.text
