"""The Claude Code hook: documented payloads leave the right rows; a broken database never
disturbs the session; `hook install` merges into settings.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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

CLAUDE_API = Path(sys.executable).parent / "claude-api"
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


def test_the_console_script_reads_stdin(tmp_path: Path) -> None:
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.main.respond(text_block("hello"), usage=(1, 2, 3, 4))
    live.write()
    database = tmp_path / "hook.db"
    result = _run_hook(
        live.payload("SessionEnd", reason="other"), f"sqlite:///{database}", tmp_path
    )
    assert (result.returncode, result.stdout) == (0, b"")
    engine = make_engine(f"sqlite:///{database}")
    try:
        [row] = agents(engine)
        assert (row.agent_name, row.status, row.output_tokens) == ("main", "completed", 2)
    finally:
        engine.dispose()


def _unwritable_sqlite(tmp_path: Path) -> str:
    database = tmp_path / "readonly.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    return f"sqlite:///file:{database}?mode=ro&uri=true"


@pytest.mark.parametrize("database", ["read-only sqlite", "postgresql down"])
def test_an_unwritable_database_never_disturbs_the_session(database: str, tmp_path: Path) -> None:
    url = (
        _unwritable_sqlite(tmp_path)
        if database == "read-only sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:1/x"
    )
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    call = agent_call("helper")
    live.main.respond(call)
    live.write()
    payload = live.payload(
        "PostToolUse", tool_name="Agent", tool_input=call["input"], tool_use_id=call["id"],
        tool_response={"status": "completed", "agentId": "x1", "totalDurationMs": 10},
    )  # fmt: skip
    elapsed, result = _timed(lambda: _run_hook(payload, url, tmp_path))
    assert result.returncode == 0
    assert result.stdout == b""
    assert b"not recorded" in result.stderr
    if elapsed >= 1.0:
        # A loaded machine (this one runs other test suites too) can take a second just to
        # start the command: then the hook may take at most half as long again as the same
        # call on a healthy database (a retry or a connect timeout would take seconds). Best
        # of two, as usual for noisy clocks.
        again, _ = _timed(lambda: _run_hook(payload, url, tmp_path))
        elapsed = min(elapsed, again)
        healthy = f"sqlite:///{tmp_path / 'healthy.db'}"
        baseline = min(_timed(lambda: _run_hook(payload, healthy, tmp_path))[0] for _ in range(2))
        assert elapsed < 1.5 * baseline + 0.2, f"{elapsed:.2f}s, healthy {baseline:.2f}s"


def _timed(run: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = run()
    return time.monotonic() - started, result


def test_garbage_on_stdin_exits_0(tmp_path: Path) -> None:
    result = _run_hook(None, f"sqlite:///{tmp_path / 'x.db'}", tmp_path, raw=b"not json{")
    assert result.returncode == 0
    assert b"not JSON" in result.stderr


def _run_hook(
    payload: dict[str, Any] | None, url: str, home: Path, *, raw: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": url, "HOME": str(home)}
    env.pop("XDG_DATA_HOME", None)
    return subprocess.run(
        [str(CLAUDE_API), "hook"],
        input=raw if raw is not None else json.dumps(payload).encode(),
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )


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
    assert json.loads(again.stdout) == {"path": str(settings), "backup": None, "added": 0}
    assert json.loads(settings.read_text()) == merged


def test_install_into_a_project(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["hook", "install", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    command = merged["hooks"]["SessionEnd"][0]["hooks"][0]["command"]
    assert command.endswith(" hook")


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
