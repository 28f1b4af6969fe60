"""Transcript import: composed sessions covering every documented variant, checked against the
ledger of what was composed (counts, tokens and costs per agent, skill, session and day)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from claude_api.events import Status
from claude_api.tracking import Tracker
from tests.import_helpers import (
    agents,
    assert_spend,
    day,
    event_id,
    one,
    run_import,
    skills,
    tokens_of,
)
from tests.transcripts import (
    HAIKU,
    SONNET,
    UNKNOWN_MODEL,
    Ledger,
    Transcript,
    agent_call,
    other_call,
    skill_call,
    stamp,
    text_block,
    thinking,
    write_meta,
)

CWD = "/home/dev/demo"
PROJECT = "-home-dev-demo"
SESSION = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c"
START = datetime(2026, 5, 1, 23, 59, 25, tzinfo=UTC)  # the session runs past midnight


@dataclass
class Composed:
    ledger: Ledger
    main: Transcript
    starts: dict[str, datetime]  # owner label -> when its invocation started
    subagents: dict[str, Transcript]


def compose_rich_session(root: Path) -> Composed:
    """Claude Code 2.1.100, nested layout: foreground, failing and background subagents (Agent
    and Task), both Skill input styles, a typed /skill, a skill inside a subagent, split
    responses, a synthetic error, a malformed line and lines of other types."""
    ledger = Ledger()
    project = root / PROJECT
    subagents_dir = project / SESSION / "subagents"
    main = Transcript(ledger, session_id=SESSION, cwd=CWD, start=START)
    starts = {"main": START + timedelta(seconds=1)}
    subs: dict[str, Transcript] = {}

    def subagent(label: str, agent_id: str, *, meta: dict | None, model: str = HAIKU) -> Transcript:
        sub = Transcript(
            ledger, session_id=SESSION, cwd=CWD, start=main.clock, owner=label, agent_id=agent_id
        )
        sub.prompt("Do the work well")
        path = subagents_dir / f"agent-{agent_id}.jsonl"
        if meta is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_meta(path, **meta)
        subs[label] = sub
        sub.model = model  # type: ignore[attr-defined]
        return sub

    main.prompt("Review src/ and fix lint")
    # A foreground subagent (Agent tool), linked by its sidecar; a skill runs inside it.
    reviewer_call = agent_call("code-reviewer")
    main.respond(thinking(), text_block("Delegating."), reviewer_call, usage=(12, 140, 18000, 900))
    starts["reviewer"] = main.clock
    reviewer = subagent(
        "reviewer",
        "a1b2c3d4e5f60718",
        meta={
            "agentType": "code-reviewer",
            "description": "Review",
            "toolUseId": reviewer_call["id"],
            "spawnDepth": 1,
        },
    )
    reviewer.respond(other_call("Grep"), model=HAIKU, usage=(4, 80, 20000, 700))
    reviewer.tool_result("toolu_grep", content="src/app.py:3: x", seconds=1)
    grep_skill = skill_call("grep-helper")
    reviewer.respond(grep_skill, model=HAIKU, usage=(5, 30, 20500, 0))
    starts["grep-helper"] = reviewer.clock
    reviewer.skill_result(grep_skill["id"], "grep-helper")
    reviewer.respond(text_block("Found 2 issues"), model=HAIKU, usage=(6, 410, 24286, 300))
    main.clock = reviewer.clock
    main.agent_result(
        reviewer_call["id"],
        "a1b2c3d4e5f60718",
        agent_type="code-reviewer",
        duration_ms=61_500,
        seconds=2,
    )

    # A model-invoked skill, current input style; the turn ends with turn_duration.
    lint = skill_call("lint-fix", args="src/")
    main.respond(lint, usage=(8, 30, 19100, 0))
    starts["lint-fix"] = main.clock
    main.skill_result(lint["id"], "lint-fix")
    main.respond(other_call("Edit"), text_block("Fixed."), usage=(9, 220, 19200, 150))
    main.turn_duration()

    # The older tool name (Task) without subagent_type, linked only by the result's agentId.
    main.prompt("Now look at the tests")
    general_call = agent_call(None, tool="Task")
    main.respond(general_call, usage=(7, 60, 19500, 400))
    starts["general"] = main.clock
    general = subagent("general", "b2c3d4e5f6071829", meta=None)
    general.respond(text_block("Tests pass"), model=SONNET, usage=(3, 90, 5000, 2000))
    main.clock = general.clock
    main.agent_result(general_call["id"], "b2c3d4e5f6071829", duration_ms=20_000, seconds=2)

    # A subagent that fails: the result is an error, its transcript still spent tokens.
    debugger_call = agent_call("debugger")
    main.respond(debugger_call, usage=(5, 40, 19800, 0))
    starts["debugger"] = main.clock
    debugger = subagent(
        "debugger",
        "c3d4e5f607182930",
        meta={"agentType": "debugger", "toolUseId": debugger_call["id"]},
    )
    debugger.respond(text_block("Looking"), model=HAIKU, usage=(2, 50, 3000, 100))
    main.clock = debugger.clock
    main.agent_error(debugger_call["id"], "Agent terminated early due to an API error: overloaded")

    # Background subagents: launched, then finished by a task notification (completed, failed).
    explore_call = agent_call("Explore", background=True)
    main.respond(explore_call, usage=(4, 35, 20000, 0))
    starts["explore"] = main.clock
    explore = subagent(
        "explore",
        "d4e5f60718293041",
        meta={"agentType": "Explore", "toolUseId": explore_call["id"]},
    )
    main.agent_launched(explore_call["id"], "d4e5f60718293041")
    plan_call = agent_call("Plan", background=True)
    main.respond(plan_call, usage=(4, 36, 20100, 0))
    starts["plan"] = main.clock
    plan = subagent(
        "plan", "e5f6071829304152", meta={"agentType": "Plan", "toolUseId": plan_call["id"]}
    )
    main.agent_launched(plan_call["id"], "e5f6071829304152")
    main.respond(text_block("Waiting for the agents."), usage=(3, 20, 20200, 0))
    explore.respond(other_call("Glob"), model=HAIKU, usage=(6, 70, 8000, 500))
    explore.tool_result("toolu_glob", content="a.py", seconds=3)
    explore.respond(text_block("Mapped."), model=HAIKU, usage=(7, 120, 8100, 0))
    plan.respond(text_block("Half a plan"), model=SONNET, usage=(2, 25, 4000, 100))
    main.clock = max(explore.clock, plan.clock)
    main.notification(explore_call["id"], "d4e5f60718293041", "completed", seconds=5)
    main.respond(text_block("Explore is done."), usage=(5, 45, 20300, 0))
    main.notification(plan_call["id"], "e5f6071829304152", "failed", seconds=5)
    main.respond(text_block("Plan failed."), usage=(5, 15, 20400, 0))

    # The Skill tool's first input style (2.0.30): {"command": "/name"}.
    old = skill_call("old-skill", style="command")
    main.respond(old, usage=(3, 10, 20500, 0), split=False)
    starts["old-skill"] = main.clock
    main.skill_result(old["id"], "old-skill")
    main.turn_duration()

    # A user-typed /skill, then a built-in command that is not a skill.
    main.typed_command("deploy", "prod")
    starts["deploy"] = main.clock
    main.respond(text_block("Deployed."), usage=(6, 75, 20600, 0))
    main.turn_duration()
    main.typed_command("compact")

    # Lines that must not count: a synthetic error reply, a malformed line, a subagent's
    # progress echo, metadata.
    main.synthetic()
    main.raw('{"type":"assistant","message":{"id":"msg_broken","usage":{"input_tokens":')
    main.raw(
        '{"type":"progress","data":{"type":"agent_progress","message":{"type":"assistant",'
        '"message":{"id":"msg_echo","model":"claude-sonnet-4-5-20250929","usage":'
        '{"input_tokens":99,"output_tokens":99}}}},"uuid":"pr-1","timestamp":"'
        + stamp(main.clock)
        + '"}'
    )
    main.raw(
        '{"type":"file-history-snapshot","messageId":"m1","snapshot":{},"isSnapshotUpdate":false}'
    )
    main.raw('{"type":"summary","summary":"Lint fixes","leafUuid":"x"}')

    main.write(project / f"{SESSION}.jsonl")
    for label, sub in subs.items():
        agent_id = sub.agent_id
        sub.write(subagents_dir / f"agent-{agent_id}.jsonl")
        del label
    return Composed(ledger, main, starts, subs)


def test_rich_session(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    composed = compose_rich_session(tmp_path)
    summary = run_import(engine, tracker, tmp_path)

    assert (summary.sessions, summary.files, summary.agents, summary.skills) == (1, 6, 6, 4)
    assert summary.skipped["malformed"] == 1
    assert summary.skipped["synthetic"] == 1
    assert summary.skipped["other type"] == 1  # the progress echo (the filter passes over the rest)
    assert summary.skipped["duplicate"] == 3  # the extra lines of the two split responses
    assert_rich_rows(engine, composed)


def assert_rich_rows(engine: Engine, composed: Composed) -> None:
    """The rows of the rich session match what was composed."""
    ledger = composed.ledger
    rows = [row for row in agents(engine) if row.task_id == SESSION]
    assert sorted(row.agent_name for row in rows) == [
        "Explore", "Plan", "code-reviewer", "debugger", "general-purpose", "main",
    ]  # fmt: skip
    main = one(rows, "main")
    main_id = event_id(SESSION, "main")
    assert main.event_id == main_id
    assert (main.task_id, main.project_id, main.parent_id) == (SESSION, CWD, None)
    assert main.status == "completed" and main.model == SONNET
    assert main.source == "transcript-import"
    assert main.timestamp == composed.main.times[0]
    assert main.finished_at == composed.main.times[-1]
    assert_spend(main, ledger, "main")

    expected = {
        "code-reviewer": ("reviewer", "completed", None),
        "general-purpose": ("general", "completed", None),
        "debugger": (
            "debugger",
            "failed",
            "Agent terminated early due to an API error: overloaded",
        ),
        "Explore": ("explore", "completed", None),
        "Plan": ("plan", "failed", 'Agent "background work" failed'),
    }
    for name, (label, status, error) in expected.items():
        row = one(rows, name)
        assert (row.status, row.error_message) == (status, error), name
        assert row.parent_id == main_id, name
        assert row.task_id == SESSION and row.project_id == CWD
        assert row.timestamp == composed.starts[label], name
        assert row.cost_source == "computed"
        assert_spend(row, ledger, label)
    assert one(rows, "code-reviewer").duration_seconds == 61.5
    assert one(rows, "general-purpose").duration_seconds == 20.0
    explore = composed.subagents["explore"]
    assert (
        one(rows, "Explore").duration_seconds
        == (explore.times[-1] - explore.times[0]).total_seconds()
    )
    assert one(rows, "code-reviewer").model == HAIKU

    skill_rows = [row for row in skills(engine) if row.task_id == SESSION]
    assert sorted(row.skill_name for row in skill_rows) == [
        "deploy", "grep-helper", "lint-fix", "old-skill",
    ]  # fmt: skip
    grep = one(skill_rows, "grep-helper")
    assert grep.parent_id == one(rows, "code-reviewer").event_id
    for name in ("lint-fix", "old-skill", "deploy"):
        row = one(skill_rows, name)
        assert row.parent_id == main_id, name
        assert row.status == "completed"
        assert row.timestamp == composed.starts[name], name
        # Claude Code 2.1.100 does not attribute responses to skills: they stay with the agent.
        assert row.input_tokens is None and row.cost_usd is None
    assert one(skill_rows, "deploy").source == "transcript-import:user-typed"
    assert one(skill_rows, "lint-fix").source == "transcript-import"
    # A skill lasts until its turn's last response.
    lint = one(skill_rows, "lint-fix")
    assert lint.duration_seconds == pytest.approx(2.51, abs=0.011)

    # Every token of the transcripts is on exactly one row.
    assert tokens_of(rows) + tokens_of(skill_rows) == ledger.total_tokens()
    assert sum(row.cost_usd for row in rows) == pytest.approx(ledger.total_cost(), rel=1e-9)

    # Per day: each invocation's spend on the day it started (the session crosses midnight).
    by_day: dict[str, float] = defaultdict(float)
    for row in rows:
        by_day[day(row.timestamp)] += row.cost_usd
    day_of = {label: day(at) for label, at in composed.starts.items()}
    expected_days = ledger.cost_by_day(day_of)
    assert set(by_day) == set(expected_days) == {"2026-05-01", "2026-05-02"}
    for when, cost in expected_days.items():
        assert by_day[when] == pytest.approx(cost, rel=1e-9)


def test_sessions_read_in_parallel_give_the_same_rows(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    composed = compose_rich_session(tmp_path)
    for index in range(3):  # more sessions, for the worker processes to share
        other = Transcript(Ledger(), session_id=f"other-{index}", cwd=CWD, start=START)
        other.prompt("hi")
        other.respond(text_block("x"))
        other.write(tmp_path / PROJECT / f"other-{index}.jsonl")
    summary = run_import(engine, tracker, tmp_path, workers=2)
    assert (summary.sessions, summary.sessions_imported, summary.agents) == (4, 4, 9)
    assert summary.skipped["duplicate"] == 3
    assert_rich_rows(engine, composed)


def test_import_twice_changes_nothing(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    compose_rich_session(tmp_path)
    run_import(engine, tracker, tmp_path)
    before = [(row.event_id, row.status, row.cost_usd, row.output_tokens) for row in agents(engine)]
    again = run_import(engine, tracker, tmp_path)
    assert (again.files_read, again.events, again.bytes_read) == (0, 0, 0)
    after = [(row.event_id, row.status, row.cost_usd, row.output_tokens) for row in agents(engine)]
    assert after == before
    assert len(skills(engine)) == 4


def test_older_flat_layout(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    """Claude Code 2.0.x: Task tool, `agent-<id>.jsonl` beside the session, no sidecar, the
    Skill tool's `command` input, a legacy `costUSD` on every line."""
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-000000000001"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START, version="2.0.30")
    main.prompt("hello")
    call = agent_call("researcher", tool="Task")
    main.respond(call, usage=(10, 50, 100, 0), cost_usd=0.0123)
    sub = Transcript(
        ledger, session_id=session, cwd=CWD, start=main.clock, owner="researcher",
        agent_id="5f6a7b8", version="2.0.30",
    )  # fmt: skip
    sub.prompt("research")
    sub.respond(text_block("found"), usage=(1, 2, 3, 4), cost_usd=0.002)
    sub.respond(text_block("more"), usage=(1, 3, 3, 4), cost_usd=0.003)
    main.clock = sub.clock
    main.agent_result(call["id"], "5f6a7b8", agent_type="researcher")
    skill = skill_call("commit", style="command")
    main.respond(skill, usage=(5, 5, 100, 0), cost_usd=0.001)
    main.skill_result(skill["id"], "commit")
    main.write(tmp_path / PROJECT / f"{session}.jsonl")
    sub.write(tmp_path / PROJECT / "agent-5f6a7b8.jsonl")
    # Another session's flat subagent file in the same directory must not be mixed in.
    stranger = Transcript(Ledger(), session_id="other", cwd=CWD, start=START, agent_id="9e9e9e9")
    stranger.respond(text_block("x"))
    stranger.write(tmp_path / PROJECT / "agent-9e9e9e9.jsonl")

    run_import(engine, tracker, tmp_path / PROJECT / f"{session}.jsonl")
    rows = [row for row in agents(engine) if row.task_id == session]
    assert sorted(row.agent_name for row in rows) == ["main", "researcher"]
    for name, label in (("main", "main"), ("researcher", "researcher")):
        row = one(rows, name)
        assert row.cost_source == "reported"
        assert_spend(row, ledger, label)
    assert one(rows, "researcher").parent_id == event_id(session, "main")
    [commit] = skills(engine)
    assert (commit.skill_name, commit.status) == ("commit", "completed")
    assert not [row for row in agents(engine) if row.task_id == "other"]


def test_failed_subagents_of_the_flat_layout_keep_their_tokens(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """Claude Code 2.0.x: a failed Task call's result is an error string without `agentId`,
    and there is no sidecar: its transcript is joined to it by its first prompt (in time order
    when calls share one), so the call keeps its type, status and tokens and no other
    invocation appears."""
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-000000000006"
    project = tmp_path / PROJECT
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START, version="2.0.76")
    main.prompt("fix the flaky test")

    def subagent(label: str, agent_id: str) -> Transcript:
        sub = Transcript(
            ledger, session_id=session, cwd=CWD, start=main.clock, owner=label,
            agent_id=agent_id, version="2.0.76",
        )  # fmt: skip
        sub.prompt("Do the work well")  # the calls' `input.prompt`
        sub.respond(text_block("looking"), model=HAIKU, usage=(2, 50 + len(label), 3000, 100))
        main.clock = sub.clock
        sub.write(project / f"agent-{agent_id}.jsonl")
        return sub

    # Two failing calls with the same prompt; the later one's transcript sorts first by name.
    first = agent_call("debugger", tool="Task")
    main.respond(first, usage=(10, 40, 1000, 0))
    subagent("debugger", "f1e2d3c")
    main.agent_error(first["id"], "Agent terminated early due to an API error: overloaded")
    second = agent_call("test-runner", tool="Task")
    main.respond(second, usage=(11, 41, 1100, 0))
    subagent("test-runner", "0a1b2c3")
    main.agent_error(second["id"], "Agent terminated early due to an API error: timeout")
    # A call with the same prompt that completed: its result names its transcript.
    third = agent_call(None, tool="Task")
    main.respond(third, usage=(12, 42, 1200, 0))
    subagent("general", "5d5d5d5")
    main.agent_result(third["id"], "5d5d5d5")
    main.respond(text_block("Two agents failed."), usage=(13, 43, 1300, 0))
    main.write(project / f"{session}.jsonl")

    summary = run_import(engine, tracker, tmp_path)
    rows = agents(engine)
    assert sorted((row.agent_name, row.status) for row in rows) == [
        ("debugger", "failed"), ("general-purpose", "completed"), ("main", "completed"),
        ("test-runner", "failed"),
    ]  # fmt: skip
    assert summary.agents == 4
    for name, label in (
        ("main", "main"), ("debugger", "debugger"), ("test-runner", "test-runner"),
        ("general-purpose", "general"),
    ):  # fmt: skip
        assert_spend(one(rows, name), ledger, label)
    assert one(rows, "debugger").error_message == (
        "Agent terminated early due to an API error: overloaded"
    )
    assert one(rows, "debugger").event_id == event_id(session, first["id"])
    assert tokens_of(rows) == ledger.total_tokens()


def test_attributed_and_forked_skills(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    """Newer CLIs mark responses driven by a skill (`attributionSkill`): those are the skill's
    own tokens, not its agent's. A forked skill's transcript is the skill's too; its copy of the
    parent's conversation counts once."""
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-000000000002"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START, version="2.1.331")
    main.prompt("review the PR")
    first = main.respond(text_block("Sure."), usage=(10, 20, 1000, 0))
    review = skill_call("review-pr")
    main.respond(review, usage=(11, 21, 1100, 0))
    main.skill_result(review["id"], "review-pr")
    main.respond(
        other_call("Bash"),
        usage=(12, 300, 1200, 50),
        owner="review-pr",
        attributionSkill="review-pr",
    )
    main.tool_result("toolu_bash", content="diff", seconds=1)
    main.respond(
        text_block("Reviewed."),
        usage=(13, 200, 1300, 0),
        owner="review-pr",
        attributionSkill="review-pr",
    )
    main.turn_duration()
    main.prompt("summarize it")
    summarize = skill_call("my-plugin:summarize")
    main.respond(summarize, usage=(14, 22, 1400, 0))
    fork = Transcript(
        ledger, session_id=session, cwd=CWD, start=main.clock, owner="summarize",
        agent_id="f0f0f0f0f0f0f0f0f", version="2.1.331",
    )  # fmt: skip
    fork.prompt("summarize")
    # The fork starts from a copy of the parent's conversation: a replay of a counted response.
    fork.respond(text_block("Sure."), usage=(10, 20, 1000, 0), message_id=first, owner="replay")
    ledger.booked = [entry for entry in ledger.booked if entry.owner != "replay"]
    fork.respond(text_block("Summary."), model=HAIKU, usage=(3, 150, 900, 60), forkedSkill=True)
    main.clock = fork.clock
    main.skill_result(
        summarize["id"],
        "my-plugin:summarize",
        status="forked",
        agentId="f0f0f0f0f0f0f0f0f",
        result="Summary.",
    )
    main.turn_duration()
    main.typed_command("deploy")
    main.respond(
        text_block("Deploying"), usage=(15, 40, 1500, 0), owner="deploy", attributionSkill="deploy"
    )
    main.turn_duration()
    main.write(tmp_path / PROJECT / f"{session}.jsonl")
    fork_path = tmp_path / PROJECT / session / "subagents" / "agent-f0f0f0f0f0f0f0f0f.jsonl"
    fork.write(fork_path)
    write_meta(fork_path, agentType="general-purpose", forkedSkillName="my-plugin:summarize")

    summary = run_import(engine, tracker, tmp_path)
    rows, skill_rows = agents(engine), skills(engine)
    assert [row.agent_name for row in rows] == ["main"]
    assert_spend(rows[0], ledger, "main")
    assert_spend(one(skill_rows, "review-pr"), ledger, "review-pr")
    assert_spend(one(skill_rows, "my-plugin:summarize"), ledger, "summarize")
    assert_spend(one(skill_rows, "deploy"), ledger, "deploy")
    assert one(skill_rows, "my-plugin:summarize").model == HAIKU
    assert tokens_of(rows) + tokens_of(skill_rows) == ledger.total_tokens()
    assert summary.skipped["duplicate"] >= 1  # the replayed response


def test_unknown_model_is_unpriced(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-000000000003"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START)
    main.prompt("hi")
    main.respond(text_block("a"), model=UNKNOWN_MODEL, usage=(5, 6, 7, 8))
    main.respond(text_block("b"), model=SONNET, usage=(1, 2, 3, 4))
    main.write(tmp_path / PROJECT / f"{session}.jsonl")
    run_import(engine, tracker, tmp_path)
    [row] = agents(engine)
    assert (row.cost_usd, row.cost_source) == (None, "unpriced")
    assert row.input_tokens == 6 and row.output_tokens == 8


def test_nested_and_orphan_subagents(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    """A subagent that spawns one (sidecar `parentAgentId`), and a workflow step agent that no
    tool call spawned (no `toolUseId`): each is an invocation in the right parent."""
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-000000000004"
    base = tmp_path / PROJECT / session / "subagents"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START, version="2.1.331")
    main.prompt("go")
    outer_call = agent_call("architect")
    main.respond(outer_call, usage=(1, 10, 100, 0))
    outer = Transcript(
        ledger,
        session_id=session,
        cwd=CWD,
        start=main.clock,
        owner="architect",
        agent_id="aaaa1111",
    )
    outer.prompt("design")
    inner_call = agent_call("Explore")
    outer.respond(inner_call, usage=(2, 20, 200, 0))
    inner = Transcript(
        ledger, session_id=session, cwd=CWD, start=outer.clock, owner="explore", agent_id="bbbb2222"
    )
    inner.prompt("look")
    inner.respond(text_block("seen"), model=HAIKU, usage=(3, 30, 300, 0))
    outer.clock = inner.clock
    outer.agent_result(inner_call["id"], "bbbb2222", agent_type="Explore")
    outer.respond(text_block("designed"), usage=(4, 40, 400, 0))
    main.clock = outer.clock
    main.agent_result(outer_call["id"], "aaaa1111", agent_type="architect")
    step = Transcript(
        ledger, session_id=session, cwd=CWD, start=main.clock, owner="step", agent_id="cccc3333"
    )
    step.prompt("step 1")
    step.respond(text_block("stepped"), model=HAIKU, usage=(5, 50, 500, 0))
    main.write(tmp_path / PROJECT / f"{session}.jsonl")
    outer.write(base / "agent-aaaa1111.jsonl")
    write_meta(
        base / "agent-aaaa1111.jsonl",
        agentType="architect",
        toolUseId=outer_call["id"],
        spawnDepth=1,
    )
    inner.write(base / "agent-bbbb2222.jsonl")
    write_meta(
        base / "agent-bbbb2222.jsonl", agentType="Explore", toolUseId=inner_call["id"],
        spawnDepth=2, parentAgentId="aaaa1111",
    )  # fmt: skip
    step.write(base / "workflows" / "wf_1" / "agent-cccc3333.jsonl")
    write_meta(base / "workflows" / "wf_1" / "agent-cccc3333.jsonl", agentType="workflow-subagent")

    run_import(engine, tracker, tmp_path)
    rows = agents(engine)
    main_row, architect, explore = one(rows, "main"), one(rows, "architect"), one(rows, "Explore")
    step_row = one(rows, "workflow-subagent")
    assert architect.parent_id == main_row.event_id
    assert explore.parent_id == architect.event_id
    assert step_row.parent_id == main_row.event_id
    assert step_row.event_id == event_id(session, "agent:cccc3333")
    assert step_row.status == Status.COMPLETED
    for row, label in (
        (main_row, "main"),
        (architect, "architect"),
        (explore, "explore"),
        (step_row, "step"),
    ):
        assert_spend(row, ledger, label)
    assert tokens_of(rows) == ledger.total_tokens()


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_cli_import_prints_a_summary(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from claude_api.client.app import app

    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-000000000005"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START)
    call = agent_call("helper")
    main.respond(call)
    sub = Transcript(
        ledger, session_id=session, cwd=CWD, start=main.clock, owner="helper", agent_id="ab12"
    )
    sub.respond(text_block("done"))
    main.agent_result(call["id"], "ab12")
    main.write(tmp_path / "projects" / PROJECT / f"{session}.jsonl")
    where = (
        tmp_path / "projects" / PROJECT / session / "subagents"
        if layout == "nested"
        else tmp_path / "projects" / PROJECT
    )
    sub.write(where / "agent-ab12.jsonl")
    monkeypatch.setenv("CLAUDE_API_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path))  # the default root
    result = CliRunner().invoke(app, ["import", "--json", "--idle-minutes", "0"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["sessions"], summary["files"], summary["agents"], summary["events"]) == (
        1,
        2,
        2,
        2,
    )
    assert summary["bytes_read"] == sum(
        path.stat().st_size for path in (tmp_path / "projects").rglob("*.jsonl")
    )
    again = CliRunner().invoke(app, ["import"])
    assert again.exit_code == 0, again.output
    assert "transcript import" in again.stdout


def test_cli_import_rejects_a_missing_path(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from claude_api.client.app import app

    result = CliRunner().invoke(app, ["import", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr
