"""The Claude Code hook: documented payloads leave the right rows; a broken database never
disturbs the session; `hook install` merges into settings.json."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.importer.hook import handle_hook
from claude_api.models.db import make_engine, upgrade
from claude_api.tracking import Tracker
from tests.hook_helpers import (
    CLAUDE_API,
    CLAUDE_API_HOOK,
    hook_log,
    inboxes,
    run_hook,
    the_inbox,
    wait_drained,
)
from tests.import_helpers import agents, assert_spend, event_id, one, skills, tokens_of
from tests.transcripts import (
    HAIKU,
    Ledger,
    Transcript,
    agent_call,
    skill_call,
    text_block,
    write_meta,
)

SESSION = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c"
CWD = "/home/dev/demo"
START = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
AGENT_ID = "a1b2c3d4e5f60718"


class LiveSession:
    """A session being written, with the paths and payloads its hooks would get."""

    def __init__(self, root: Path) -> None:
        self.ledger = Ledger()
        self.project = root / "projects" / "-home-dev-demo"
        self.main_path = self.project / f"{SESSION}.jsonl"
        self.agent_path = self.project / SESSION / "subagents" / f"agent-{AGENT_ID}.jsonl"
        self.main = Transcript(self.ledger, session_id=SESSION, cwd=CWD, start=START)
        self.sub: Transcript | None = None

    def payload(self, event: str, **fields: Any) -> dict[str, Any]:
        return {
            "session_id": SESSION,
            "transcript_path": str(self.main_path),
            "cwd": CWD,
            "permission_mode": "default",
            "hook_event_name": event,
            **fields,
        }

    def write(self) -> None:
        self.main.write(self.main_path)
        if self.sub is not None:
            self.sub.write(self.agent_path)


def test_documented_payloads_leave_the_right_rows(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    live = LiveSession(tmp_path)
    main = live.main
    main.prompt("Review src/ and fix lint")
    call = agent_call("code-reviewer")
    main.respond(call, usage=(12, 140, 18000, 900))
    live.sub = sub = Transcript(
        live.ledger,
        session_id=SESSION,
        cwd=CWD,
        start=main.clock,
        owner="reviewer",
        agent_id=AGENT_ID,
    )
    sub.prompt("Review src/ for bugs")
    live.write()
    write_meta(live.agent_path, agentType="code-reviewer", toolUseId=call["id"], spawnDepth=1)

    def hook(event: str, **fields: Any) -> None:
        handle_hook(live.payload(event, **fields), engine=engine, tracker=tracker)

    hook("SubagentStart", agent_id=AGENT_ID, agent_type="code-reviewer")
    rows = agents(engine)
    assert {(row.agent_name, row.status) for row in rows} == {
        ("main", "running"), ("code-reviewer", "running"),
    }  # fmt: skip
    assert all(row.source == "claude-code-hook" for row in rows)
    assert_spend(one(rows, "main"), live.ledger, "main")  # what it spent so far

    sub.respond(text_block("Found 2 issues"), model=HAIKU, usage=(4, 410, 24286, 700))
    live.write()
    hook(
        "SubagentStop", agent_id=AGENT_ID, agent_type="code-reviewer", stop_hook_active=False,
        agent_transcript_path=str(live.agent_path), last_assistant_message="Found 2 issues",
    )  # fmt: skip
    reviewer = one(agents(engine), "code-reviewer")
    assert reviewer.status == "running"  # its result is to come
    assert_spend(reviewer, live.ledger, "reviewer")  # what it spent so far

    # PostToolUse arrives before the transcript shows the result (the transcript may lag).
    response = {
        "status": "completed", "agentId": AGENT_ID, "agentType": "code-reviewer",
        "content": [{"type": "text", "text": "Found 2 issues"}], "totalDurationMs": 61500,
        "totalTokens": 25400, "totalToolUseCount": 6,
        "usage": {"input_tokens": 4, "output_tokens": 410},
    }  # fmt: skip
    hook(
        "PostToolUse", tool_name="Agent", tool_input=call["input"], tool_response=response,
        tool_use_id=call["id"], duration_ms=61620,
    )  # fmt: skip
    reviewer = one(agents(engine), "code-reviewer")
    assert (reviewer.status, reviewer.duration_seconds) == ("completed", 61.5)
    assert reviewer.event_id == event_id(SESSION, call["id"])
    assert_spend(reviewer, live.ledger, "reviewer")

    main.clock = sub.clock
    main.agent_result(call["id"], AGENT_ID, agent_type="code-reviewer", duration_ms=61500)
    lint = skill_call("lint-fix", args="src/")
    main.respond(lint, usage=(8, 30, 19100, 0))
    live.write()
    hook(
        "PostToolUse", tool_name="Skill", tool_input=lint["input"],
        tool_response={"success": True, "commandName": "lint-fix"}, tool_use_id=lint["id"],
    )  # fmt: skip
    assert one(skills(engine), "lint-fix").status == "running"  # its turn goes on

    main.respond(text_block("Fixed 2 lint issues."), usage=(9, 50, 19200, 0))
    main.turn_duration()
    live.write()
    hook("SessionEnd", reason="prompt_input_exit")
    rows = agents(engine)
    main_row = one(rows, "main")
    assert main_row.status == "completed"
    assert_spend(main_row, live.ledger, "main")
    [lint_row] = skills(engine)
    assert (lint_row.status, lint_row.parent_id) == ("completed", main_row.event_id)
    assert tokens_of(rows) == live.ledger.total_tokens()

    # A late duplicate hook changes nothing.
    hook("SessionEnd", reason="other")
    assert len(agents(engine)) == 2 and len(skills(engine)) == 1


def test_failed_tool_and_session_agent(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    """PostToolUseFailure fails the call; `agent_type` without `agent_id` names the session's
    agent (`claude --agent`)."""
    live = LiveSession(tmp_path)
    live.main.prompt("go")
    call = agent_call("debugger")
    live.main.respond(call)
    live.write()
    payload = live.payload(
        "PostToolUseFailure", tool_name="Task", tool_input=call["input"], tool_use_id=call["id"],
        error="Agent terminated early due to an API error", agent_type="release-manager",
    )  # fmt: skip
    handle_hook(payload, engine=engine, tracker=tracker)
    handle_hook(live.payload("SessionEnd", reason="other"), engine=engine, tracker=tracker)
    rows = agents(engine)
    debugger = one(rows, "debugger")
    assert (debugger.status, debugger.error_message) == (
        "failed", "Agent terminated early due to an API error",
    )  # fmt: skip
    assert one(rows, "release-manager").parent_id is None


@pytest.mark.parametrize("command", ["claude-api-hook", "claude-api hook"])
def test_the_console_script_reads_stdin(command: str, tmp_path: Path) -> None:
    """The installed script, and `claude-api hook` of earlier installs, return at once; the
    worker they start records the session."""
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.main.respond(text_block("hello"), usage=(1, 2, 3, 4))
    live.write()
    database = tmp_path / "hook.db"
    env = _env(f"sqlite:///{database}", tmp_path)
    result = run_hook(live.payload("SessionEnd", reason="other"), env, _command(command))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    wait_drained(env)
    engine = make_engine(f"sqlite:///{database}")
    try:
        [row] = agents(engine)
        assert (row.agent_name, row.status, row.output_tokens) == ("main", "completed", 2)
    finally:
        engine.dispose()
    assert the_inbox(env).entries() == []


def _unwritable_sqlite(tmp_path: Path) -> str:
    database = tmp_path / "readonly.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    return f"sqlite:///file:{database}?mode=ro&uri=true"


def test_a_read_only_database_never_disturbs_the_session(tmp_path: Path) -> None:
    """The hook returns at once; the worker logs why it could not record and keeps the payload
    for the next worker, up to three attempts, then gives it up (logged) and goes on."""
    env = _env(_unwritable_sqlite(tmp_path), tmp_path)
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    calls = [agent_call("helper"), agent_call("fixer"), agent_call("tester")]
    for call in calls:
        live.main.respond(call)
    live.write()
    payloads = [
        live.payload(
            "PostToolUse", tool_name="Agent", tool_input=call["input"], tool_use_id=call["id"],
            tool_response={"status": "completed", "agentId": "x1", "totalDurationMs": 10},
        )
        for call in calls
    ]  # fmt: skip
    result = run_hook(payloads[0], env)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    wait_drained(env)
    assert "hook PostToolUse of session " + SESSION + " not recorded (attempt 1 of 3" in (
        hook_log(env)
    )
    [waiting] = the_inbox(env).entries()
    assert waiting.attempts == 1

    for payload in payloads[1:]:  # the next hook calls' workers try the first one again, first
        assert run_hook(payload, env).returncode == 0
        wait_drained(env)
    log = hook_log(env)
    assert "(attempt 2 of 3" in log and "given up after 3 attempts" in log
    inbox = the_inbox(env)
    left = inbox.entries()
    assert [json.loads(inbox.read(entry)) for entry in left] == payloads[1:]
    assert [entry.attempts for entry in left] == [1, 0]


def test_a_database_that_cannot_be_reached_keeps_every_payload(tmp_path: Path) -> None:
    """PostgreSQL down: nothing is recorded, nothing is given up; the payloads wait."""
    env = _env("postgresql+psycopg://postgres@127.0.0.1:1/x", tmp_path)
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.write()
    for reason in ("other", "clear", "logout", "prompt_input_exit"):
        result = run_hook(live.payload("SessionEnd", reason=reason), env)
        assert (result.returncode, result.stdout) == (0, b"")
        wait_drained(env)
    assert "hook payloads wait in" in hook_log(env)
    assert "the database cannot be opened" in hook_log(env)
    entries = the_inbox(env).entries()
    assert [entry.attempts for entry in entries] == [0, 0, 0, 0]
    reasons = [json.loads(the_inbox(env).read(entry))["reason"] for entry in entries]
    assert reasons == ["other", "clear", "logout", "prompt_input_exit"]  # in arrival order


@pytest.mark.parametrize("command", ["claude-api-hook", "claude-api hook"])
def test_garbage_on_stdin_exits_0(command: str, tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    result = run_hook(None, env, _command(command), raw=b"not json{")
    assert (result.returncode, result.stdout) == (0, b"")
    assert b"not JSON" in result.stderr
    assert "not JSON" in hook_log(env)
    assert inboxes(env) == []


def _env(url: str, home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_API_")}
    env.update(CLAUDE_API_DATABASE_URL=url, HOME=str(home))
    env.pop("XDG_DATA_HOME", None)
    return env


def _command(command: str) -> list[str]:
    return [str(CLAUDE_API), "hook"] if command == "claude-api hook" else [str(CLAUDE_API_HOOK)]


# ---- hook install ---------------------------------------------------------------------------


def test_install_merges_and_backs_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "config"))
    settings = tmp_path / "config" / "settings.json"
    settings.parent.mkdir()
    existing = {
        "model": "opus",
        "hooks": {
            "PostToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "lint.sh"}]}
            ],
            "Stop": [{"hooks": [{"type": "command", "command": "notify.sh"}]}],
        },
    }
    settings.write_text(json.dumps(existing))
    runner = CliRunner()
    commands = ["--command", "claude-api hook", "--budget-command", "claude-api-hook"]
    result = runner.invoke(app, ["hook", "install", "--user", *commands, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 6
    assert json.loads(Path(report["backup"]).read_text()) == existing

    merged = json.loads(settings.read_text())
    assert merged["model"] == "opus"
    assert merged["hooks"]["Stop"] == existing["hooks"]["Stop"]
    post = merged["hooks"]["PostToolUse"]
    assert post[0] == existing["hooks"]["PostToolUse"][0]
    assert post[1]["matcher"] == "Agent|Task|Skill"
    assert post[1]["hooks"][0]["command"] == "claude-api hook"
    assert post[1]["hooks"][0]["async"] is True
    for event in ("SubagentStart", "SubagentStop", "PostToolUseFailure", "SessionEnd"):
        [group] = merged["hooks"][event]
        assert group["hooks"][0]["command"] == "claude-api hook"
    assert "async" not in merged["hooks"]["SessionEnd"][0]["hooks"][0]
    [budget_check] = merged["hooks"]["PreToolUse"]
    assert budget_check["matcher"] == "Agent|Task|Skill"
    assert budget_check["hooks"][0]["command"] == "claude-api-hook"
    assert "async" not in budget_check["hooks"][0]  # Claude Code waits for its decision

    again = runner.invoke(app, ["hook", "install", *commands, "--json"])
    assert json.loads(again.stdout) == {
        "path": str(settings), "backup": None, "added": 0, "replaced": 0,
    }  # fmt: skip
    assert json.loads(settings.read_text()) == merged


def test_install_into_a_project(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["hook", "install", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    commands = {
        event: [handler["command"] for group in groups for handler in group["hooks"]]
        for event, groups in merged["hooks"].items()
    }
    # One light script for every event: it records, and answers PreToolUse with the budgets.
    events = ("SubagentStart", "SubagentStop", "PostToolUse", "PostToolUseFailure", "SessionEnd")
    assert commands == {event: [str(CLAUDE_API_HOOK)] for event in (*events, "PreToolUse")}


def test_install_replaces_the_hook_of_an_earlier_install(tmp_path: Path) -> None:
    """Settings from before the light hook run `claude-api hook` (or `--remote`): installing
    again makes those entries run the new script, leaving the user's own hooks alone, so that
    no payload is recorded twice."""
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    old = "/opt/venv/bin/claude-api hook --remote"
    earlier = {
        "hooks": {
            "SubagentStart": [{"hooks": [{"type": "command", "command": old, "async": True}]}],
            "PostToolUse": [
                {"matcher": "Agent|Task|Skill", "hooks": [
                    {"type": "command", "command": "lint.sh"},
                    {"type": "command", "command": old, "async": True, "timeout": 30},
                ]},
                {"matcher": "Bash", "hooks": [{"type": "command", "command": old}]},
            ],
            "SessionEnd": [
                {"hooks": [{"type": "command", "command": "/usr/bin/python3 -m "
                            "claude_api.client hook", "timeout": 30}]},
                {"hooks": [{"type": "command", "command": "claude-api hook"}]},
            ],
        }
    }  # fmt: skip
    settings.write_text(json.dumps(earlier))
    result = CliRunner().invoke(app, ["hook", "install", "--project", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["replaced"] == 3
    hooks = json.loads(settings.read_text())["hooks"]
    new = str(CLAUDE_API_HOOK)
    assert hooks["SubagentStart"] == [
        {"hooks": [{"type": "command", "command": new, "async": True}]}
    ]
    assert hooks["PostToolUse"][0]["hooks"] == [
        {"type": "command", "command": "lint.sh"},
        {"type": "command", "command": new, "async": True, "timeout": 30},
    ]
    assert hooks["PostToolUse"][1] == earlier["hooks"]["PostToolUse"][1]  # not our matcher
    assert hooks["SessionEnd"] == [{"hooks": [{"type": "command", "command": new, "timeout": 30}]}]
    assert json.loads(result.stdout)["added"] == 3  # SubagentStop, PostToolUseFailure, PreToolUse


def test_install_refuses_a_broken_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text("{ not json")
    result = CliRunner().invoke(app, ["hook", "install", "--project", str(tmp_path)])
    assert result.exit_code == 1
    assert settings.read_text() == "{ not json"


def test_a_stale_hook_result_waits_for_its_call(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """PostToolUse for a call the transcript does not show yet is kept until it does."""
    live = LiveSession(tmp_path)
    live.main.prompt("go")
    live.write()
    call = agent_call("helper")
    payload = live.payload(
        "PostToolUse", tool_name="Agent", tool_input=call["input"], tool_use_id=call["id"],
        tool_response={"status": "completed", "agentId": "zz", "totalDurationMs": 4000},
    )  # fmt: skip
    handle_hook(payload, engine=engine, tracker=tracker, now=START + timedelta(minutes=1))
    assert [row.agent_name for row in agents(engine)] == ["main"]
    live.main.respond(call)
    live.write()
    handle_hook(live.payload("SessionEnd", reason="other"), engine=engine, tracker=tracker)
    helper = one(agents(engine), "helper")
    assert (helper.status, helper.duration_seconds) == ("completed", 4.0)
