"""The PreToolUse budget hook as Claude Code runs it: a real `claude-api-hook` process fed the
JSON Claude Code sends, on SQLite and PostgreSQL. A spent deny budget denies the subagent or
skill with the budget's reason; a spent warn budget lets it run with the warning as context;
otherwise it prints nothing. It lets the call go on, and logs why, when the database cannot be
reached, and it loads no heavy library. `hook install` puts it in settings.json."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.events import Status
from claude_api.models.budgets import set_budget
from claude_api.models.db import make_engine, upgrade, write_engine
from claude_api.models.task_sessions import SessionNames, register_session
from tests.factories import add_events, make_event

BIN = Path(sys.executable).parent
CLAUDE_API = BIN / "claude-api"
CLAUDE_API_HOOK = BIN / "claude-api-hook"
SESSION = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c"
CWD = "/home/dev/demo"
# As Claude Code sends them (the formats reference, section 4.3; the Agent call composed from its
# PostToolUse example's input).
SKILL_CALL = {
    "session_id": SESSION,
    "transcript_path": f"/home/dev/.claude/projects/-home-dev-demo/{SESSION}.jsonl",
    "cwd": CWD,
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Skill",
    "tool_input": {"skill": "lint-fix", "args": "src/"},
    "tool_use_id": "toolu_01B",
}
AGENT_CALL = {
    **SKILL_CALL,
    "tool_name": "Agent",
    "tool_input": {
        "description": "Review source",
        "prompt": "Review src/ for bugs",
        "subagent_type": "code-reviewer",
    },
    "tool_use_id": "toolu_01A",
}
HEAVY = (
    "sqlalchemy", "sqlmodel", "pydantic", "typer", "rich", "strawberry", "gql", "pluggy",
    "platformdirs", "typing", "psycopg",
)  # fmt: skip


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def hook_env(tmp_path: Path, url: str | None, **extra: str) -> dict[str, str]:
    """A clean environment: no CLAUDE_API_* from the caller, the data directory in tmp_path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE")}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "data"), **extra)
    if url is not None:
        env["CLAUDE_API_DATABASE_URL"] = url
    return env


def run_hook(
    payload: dict[str, Any], env: dict[str, str], command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command or [str(CLAUDE_API_HOOK)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def hook_log(tmp_path: Path) -> str:
    path = tmp_path / "data" / "claude-api" / "hook.log"
    return path.read_text() if path.exists() else ""


@pytest.fixture
def today() -> datetime:
    """A moment of today (UTC) that stays in today while the test runs."""
    now = datetime.now(UTC)
    tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if tomorrow - now < timedelta(minutes=2):
        time.sleep((tomorrow - now).total_seconds() + 1)
        now = datetime.now(UTC)
    return now - timedelta(seconds=1)


def _budget(engine: Engine, **fields: Any) -> None:
    with Session(write_engine(engine)) as session:
        set_budget(session, **fields)
        session.commit()


def test_a_spent_deny_budget_denies_the_subagent(
    engine: Engine, tmp_path: Path, today: datetime
) -> None:
    costs = [12.25, 8.16]
    add_events(engine, *(make_event(timestamp=today, cost_usd=cost) for cost in costs))
    add_events(engine, make_event(timestamp=today - timedelta(days=1), cost_usd=500.0))
    _budget(engine, kind="agent", name="code-reviewer", period="day", usd=20.0)

    result = run_hook(AGENT_CALL, hook_env(tmp_path, database_url(engine)))

    assert (result.returncode, result.stderr) == (0, "")
    spent = f"${sum(costs):,.2f}"
    assert json.loads(result.stdout) == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": (
                f"budget 'code-reviewer per day' of $20.00 is spent: {spent} today"
            ),
        }
    }
    # The same agent under the older tool name is the same subagent.
    task_call = {**AGENT_CALL, "tool_name": "Task"}
    assert json.loads(run_hook(task_call, hook_env(tmp_path, database_url(engine))).stdout)


def test_a_spent_warn_budget_lets_the_skill_run_with_a_warning(
    engine: Engine, tmp_path: Path, today: datetime
) -> None:
    # The project is the session's working directory, as the import records it.
    spent = make_event(kind="skill", name="lint-fix", project_id=CWD, timestamp=today,
                       input_tokens=40_000, output_tokens=2_000)  # fmt: skip
    other_project = make_event(kind="skill", name="lint-fix", project_id="/elsewhere",
                               timestamp=today, input_tokens=10**6)  # fmt: skip
    add_events(engine, spent, other_project)
    _budget(engine, project_id=CWD, period="week", tokens=42_000, action="warn")

    result = run_hook(SKILL_CALL, hook_env(tmp_path, database_url(engine)))

    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "additionalContext": (
                f"Warning: budget 'project {CWD} per week' of 42,000 tokens is spent: "
                "42,000 tokens this week"
            ),
        }
    }


def test_a_budget_with_room_left_prints_nothing(
    engine: Engine, tmp_path: Path, today: datetime
) -> None:
    add_events(engine, make_event(timestamp=today, cost_usd=19.99))
    add_events(engine, make_event(timestamp=today, status=Status.RUNNING))  # no cost yet
    _budget(engine, kind="agent", name="code-reviewer", period="day", usd=20.0)
    _budget(engine, kind="skill", name="code-reviewer", period="day", usd=1.0)  # not this call
    _budget(engine, kind="agent", name="code-reviewer", project_id="/elsewhere", period="day",
            usd=1.0)  # fmt: skip

    result = run_hook(AGENT_CALL, hook_env(tmp_path, database_url(engine)))

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    # A tool call that is no subagent or skill is none of its business.
    bash = {**AGENT_CALL, "tool_name": "Bash", "tool_input": {"command": "ls"}}
    assert run_hook(bash, hook_env(tmp_path, database_url(engine))).stdout == ""


def test_a_running_subagent_counts_toward_the_budget(
    engine: Engine, tmp_path: Path, today: datetime
) -> None:
    add_events(engine, make_event(timestamp=today, status=Status.RUNNING, cost_usd=3.5))
    _budget(engine, kind="agent", name="code-reviewer", period="month", usd=3.5)

    result = run_hook(AGENT_CALL, hook_env(tmp_path, database_url(engine)))

    reason = json.loads(result.stdout)["hookSpecificOutput"]["permissionDecisionReason"]
    assert reason == "budget 'code-reviewer per month' of $3.50 is spent: $3.50 this month"


def test_a_session_the_executor_ran_counts_under_its_project(
    engine: Engine, tmp_path: Path, today: datetime
) -> None:
    register_session(engine, SESSION, SessionNames(agent="main", project_id="web"))
    add_events(engine, make_event(timestamp=today, project_id="web", cost_usd=5.0))
    _budget(engine, project_id="web", period="day", usd=5.0)

    result = run_hook(AGENT_CALL, hook_env(tmp_path, database_url(engine)))

    reason = json.loads(result.stdout)["hookSpecificOutput"]["permissionDecisionReason"]
    assert reason == "budget 'project web per day' of $5.00 is spent: $5.00 today"


def test_the_call_goes_on_when_the_database_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "analytics.db"

    result = run_hook(AGENT_CALL, hook_env(tmp_path, f"sqlite:///{missing}"))

    assert (result.returncode, result.stdout) == (0, "")
    assert "budgets not checked, the call goes on" in result.stderr
    assert "unable to open database file" in result.stderr
    assert "budgets not checked" in hook_log(tmp_path)
    assert not missing.exists()  # never created by the check


def test_the_call_goes_on_when_postgresql_cannot_be_reached(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"

    started = time.monotonic()
    result = run_hook(AGENT_CALL, hook_env(tmp_path, url))

    assert (result.returncode, result.stdout) == (0, "")
    assert "budgets not checked" in result.stderr and "budgets not checked" in hook_log(tmp_path)
    assert time.monotonic() - started < 10


def test_a_database_from_before_budgets_means_no_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0007")
    engine.dispose()

    result = run_hook(AGENT_CALL, hook_env(tmp_path, url))

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_bad_input_is_logged_and_the_call_goes_on(tmp_path: Path) -> None:
    for text in ("{ not json", "[1, 2]"):
        result = subprocess.run(
            [str(CLAUDE_API_HOOK)], input=text, capture_output=True, text=True,
            env=hook_env(tmp_path, None), timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stdout) == (0, "")
        assert result.stderr.startswith("claude-api-hook: hook input is not")


def test_the_hook_loads_no_heavy_library(tmp_path: Path, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    engine.dispose()
    _budget_on(sqlite_url)
    code = (
        "import json, sys\n"
        "from claude_api.guardrails.pretool import answer_for\n"
        f"answer_for(json.loads({json.dumps(json.dumps(AGENT_CALL))}))\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    env = hook_env(tmp_path, sqlite_url)
    env.pop("XDG_DATA_HOME")  # the data directory found from HOME, as by default
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert (result.returncode, result.stderr, result.stdout.strip()) == (0, "", "[]")


def _budget_on(url: str) -> None:
    engine = make_engine(url)
    try:
        _budget(engine, period="day", usd=1.0)
    finally:
        engine.dispose()


def test_hook_install_adds_the_budget_hook_that_claude_code_runs(
    engine: Engine, tmp_path: Path, today: datetime
) -> None:
    add_events(engine, make_event(timestamp=today, cost_usd=25.0))
    _budget(engine, kind="agent", name="code-reviewer", period="day", usd=20.0)
    project = tmp_path / "repo"
    project.mkdir()
    env = hook_env(tmp_path, database_url(engine))

    installed = subprocess.run(
        [str(CLAUDE_API), "hook", "install", "--project", str(project), "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip

    assert json.loads(installed.stdout)["added"] == 6
    hooks = json.loads((project / ".claude" / "settings.json").read_text())["hooks"]
    [group] = hooks["PreToolUse"]
    assert group["matcher"] == "Agent|Task|Skill"
    [handler] = group["hooks"]
    assert "async" not in handler  # Claude Code waits for its decision
    assert shlex.split(handler["command"]) == [str(CLAUDE_API_HOOK)]
    # Claude Code runs the command through the shell, the JSON on stdin.
    result = run_hook(AGENT_CALL, env, command=["sh", "-c", handler["command"]])
    assert json.loads(result.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    # The events that are recorded run the same script, which keeps them for its worker.
    assert hooks["PostToolUse"][0]["hooks"][0]["command"] == handler["command"]


@pytest.mark.parametrize(
    "env",
    [
        {"XDG_DATA_HOME": "/srv/data", "HOME": "/home/dev"},
        {"XDG_DATA_HOME": "relative/data", "HOME": "/home/dev"},
        {"HOME": "/home/dev"},
        {"HOME": "/home/dev", "CLAUDE_API_DATABASE_URL": "sqlite:////var/lib/usage.db"},
        {"HOME": "/home/dev", "claude_api_database_url": "postgresql+psycopg://db/usage"},
    ],
)
def test_the_hook_finds_the_database_the_settings_name(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from claude_api.config import Settings
    from claude_api.guardrails import dbapi

    for key in list(os.environ):
        if key.upper() in ("XDG_DATA_HOME", "HOME", "CLAUDE_API_DATABASE_URL"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert dbapi.database_url() == Settings().database_url


@pytest.mark.parametrize(
    "url",
    ["sqlite:////tmp/a%20b.db", "sqlite:///rel/x.db", "sqlite:///x.db?timeout=3",
     "sqlite+pysqlite:////tmp/q.db", "sqlite:////tmp/a b.db"],
)  # fmt: skip
def test_the_hook_opens_the_file_sqlalchemy_opens(url: str) -> None:
    from sqlalchemy.engine import make_url

    from claude_api.guardrails import dbapi

    assert dbapi.sqlite_path(url.partition("://")[2]) == make_url(url).database
