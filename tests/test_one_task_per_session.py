"""One Claude Code session is one task: a task run by the executor, its transcripts imported and
its hooks handled, in any order, leaves one row per invocation under one task id.

The fake `claude` writes the session's transcripts as Claude Code does, beside its stream-json;
expected rows are computed here from the scripted messages and published prices.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from claude_api.config import Settings
from claude_api.executor import TaskResult, run_task
from claude_api.importer import ImportOptions, import_transcripts
from claude_api.importer.hook import handle_hook
from claude_api.models.tables import AgentUsage, SkillUsage
from claude_api.tracking import Tracker
from tests.fake_claude import FakeClaude
from tests.fake_claude import scenarios as sc
from tests.import_helpers import event_id
from tests.test_executor import price, responses, rows, tokens_of

PROJECT = "web"
LEAD = "lead"  # the agent the task runs as (`--agent`)
OWNERS = {LEAD: None, "code-reviewer": sc.REVIEWER, "Explore": sc.EXPLORER}
REVIEWER_RESULT_LINE = 13  # the line of success() that carries code-reviewer's tool result


@pytest.fixture
def fake(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


def exactly_priced_success() -> sc.Script:
    """success(), with the run's reported total equal to its responses at published prices, so
    the executor (which takes the reported total) and the import (which prices responses)
    agree on every row's cost."""
    script = sc.success()
    total = sum(
        price(model, usage)
        for owner in OWNERS.values()
        for model, usage in responses(script, owner).values()
    )
    final = {**script.stdout[-1], "total_cost_usd": total}
    return dataclasses.replace(script, stdout=[*script.stdout[:-1], final])


class Producers:
    """The three producers of one session's rows, on one database."""

    def __init__(self, fake: FakeClaude, engine: Engine, tracker: Tracker, cwd: Path) -> None:
        self.fake = fake
        self.engine = engine
        self.tracker = tracker
        self.cwd = cwd

    def run(self, script: sc.Script) -> TaskResult:
        settings = Settings(claude_bin=str(self.fake.install(script)))
        result = run_task(
            "Fix lint",
            tracker=self.tracker,
            agent=LEAD,
            project_id=PROJECT,
            settings=settings,
            cwd=self.cwd,
            registry=self.engine,
        )
        assert self.tracker.flush(30)
        return result

    def import_(self, *, over: bool = True) -> None:
        # Over: the transcripts' last lines are older than no time at all. Not over: a session
        # whose last line is younger than an hour still runs.
        idle = timedelta(0) if over else timedelta(hours=1)
        summary = import_transcripts(
            [self.fake.projects],
            engine=self.engine,
            tracker=self.tracker,
            options=ImportOptions(idle=idle),
        )
        assert self.tracker.flush(30)
        assert summary.ok and summary.sessions == 1

    def hook(self, event: str, **fields: Any) -> None:
        session_id = self.session_of_transcript()
        payload = {
            "hook_event_name": event,
            "session_id": session_id,
            "transcript_path": str(self.fake.transcript_path(session_id, self.cwd)),
            "cwd": str(self.cwd),
            "agent_type": LEAD,  # the main thread of a session run with --agent
            **fields,
        }
        outcome = handle_hook(payload, engine=self.engine, tracker=self.tracker)
        assert outcome.skipped is None

    def session_of_transcript(self) -> str:
        (main,) = self.fake.projects.glob("*/*.jsonl")
        return main.stem

    def run_paused(self, script: sc.Script, line: int, meanwhile: Callable[[], None]) -> TaskResult:
        """Run `script`, doing `meanwhile` while Claude Code waits after stream line `line`."""
        resume = self.cwd / "resume"
        paused = dataclasses.replace(script, pause_after_line=line, resume_file=str(resume))
        done: list[TaskResult] = []
        runner = threading.Thread(target=lambda: done.append(self.run(paused)))
        runner.start()
        try:
            waiting = Path(f"{resume}.waiting")
            deadline = time.monotonic() + 30
            while not waiting.exists():
                assert time.monotonic() < deadline, f"the fake never reached stream line {line}"
                time.sleep(0.02)
            meanwhile()
        finally:
            resume.touch()
            runner.join(60)
        assert done, "the run did not end"
        return done[0]


def reviewer_post_tool_use(script: sc.Script) -> dict[str, Any]:
    (result_message,) = [
        m
        for m in script.messages
        if m["type"] == "user"
        and m["message"]["content"][0].get("tool_use_id") == sc.REVIEWER
        and m["parent_tool_use_id"] is None
    ]
    return {
        "tool_name": "Agent",
        "tool_input": {"description": "Review", "prompt": "Review src/"},
        "tool_response": result_message["tool_use_result"],
        "tool_use_id": sc.REVIEWER,
        "duration_ms": 61620,
    }


ORDERS = [
    "run, import, hook",
    "run, hook, import",
    "import and hook while it runs, then run, import, hook",
    "hook and import end it before the executor does",
]


@pytest.mark.parametrize("order", ORDERS)
def test_a_session_is_recorded_once_whoever_sees_it(
    order: str, fake: FakeClaude, engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    cwd = tmp_path / "work"
    cwd.mkdir()
    producers = Producers(fake, engine, tracker, cwd)
    script = exactly_priced_success()

    if order == "run, import, hook":
        result = producers.run(script)
        producers.import_()
        producers.hook("SessionEnd", reason="other")
    elif order == "run, hook, import":
        result = producers.run(script)
        producers.hook("SessionEnd", reason="other")
        producers.import_()
    elif order.startswith("import and hook while it runs"):

        def meanwhile() -> None:
            producers.import_(over=False)
            producers.hook("PostToolUse", **reviewer_post_tool_use(script))

        result = producers.run_paused(script, REVIEWER_RESULT_LINE, meanwhile)
        producers.import_()
        producers.hook("SessionEnd", reason="other")
    else:

        def meanwhile() -> None:
            producers.hook("SessionEnd", reason="other")
            producers.import_()

        result = producers.run_paused(script, len(script.stdout), meanwhile)
        producers.import_()

    assert result.ok
    session_id = producers.session_of_transcript()
    assert result.task_id == result.session_id == session_id
    assert [call["session_id"] for call in fake.calls()] == [session_id]
    assert_one_row_per_invocation(engine, script, session_id)


def assert_one_row_per_invocation(engine: Engine, script: sc.Script, session_id: str) -> None:
    agents = rows(engine, AgentUsage.__table__)
    skills = rows(engine, SkillUsage.__table__)
    assert sorted(row["agent_name"] for row in agents) == sorted(OWNERS)
    assert [row["skill_name"] for row in skills] == ["lint-fix"]

    main_id = event_id(session_id, "main")
    by_name = {row["agent_name"]: row for row in agents}
    expected_ids = {LEAD: main_id, "code-reviewer": event_id(session_id, sc.REVIEWER)}
    expected_ids["Explore"] = event_id(session_id, sc.EXPLORER)
    parents = {LEAD: None, "code-reviewer": main_id, "Explore": main_id}
    for name, owner in OWNERS.items():
        row = by_name[name]
        assert (row["event_id"], row["parent_id"]) == (expected_ids[name], parents[name]), name
        assert (row["task_id"], row["project_id"], row["status"]) == (
            session_id,
            PROJECT,
            "completed",
        )
        streamed = responses(script, owner)
        assert {key: row[key] for key in TOKENS} == tokens_of([u for _, u in streamed.values()])
        expected_cost = sum(price(model, usage) for model, usage in streamed.values())
        assert row["cost_usd"] == pytest.approx(expected_cost, rel=1e-9), name

    (skill,) = skills
    assert skill["event_id"] == event_id(session_id, sc.LINT_SKILL)
    assert skill["parent_id"] == expected_ids["code-reviewer"]
    assert (skill["task_id"], skill["project_id"], skill["status"]) == (
        session_id,
        PROJECT,
        "completed",
    )
    # Claude Code attributed no response to the skill: its tokens stay with code-reviewer.
    assert {key: skill[key] for key in TOKENS} == dict.fromkeys(TOKENS)


TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


def test_a_session_the_executor_did_not_run_is_named_by_the_import(
    fake: FakeClaude, engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """Without the executor's registration, the import names the project after the working
    directory and the main agent `main`, as before."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    producers = Producers(fake, engine, tracker, cwd)
    session_id = str(uuid.uuid4())
    settings = Settings(claude_bin=str(fake.install(sc.simple())))
    result = run_task("Hi", tracker=None, task_id=session_id, settings=settings, cwd=cwd)
    assert result.ok
    producers.import_()

    (main,) = rows(engine, AgentUsage.__table__)
    assert (main["agent_name"], main["task_id"], main["project_id"]) == (
        "main",
        session_id,
        str(cwd),
    )
    assert main["event_id"] == event_id(session_id, "main")
