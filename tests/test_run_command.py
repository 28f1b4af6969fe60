"""`claude-api run` as users run it: the console script, a fake `claude`, a SQLite file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from claude_api.models.db import make_engine
from claude_api.models.tables import AgentUsage, SkillUsage
from tests.fake_claude import FakeClaude
from tests.fake_claude import scenarios as sc
from tests.hook_helpers import hook_log, wait_drained


def _console_script() -> str:
    beside = Path(sys.executable).with_name("claude-api")
    found = str(beside) if beside.exists() else shutil.which("claude-api")
    assert found, "the claude-api console script is not installed"
    return found


@pytest.fixture
def fake(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def cli_engine(database_file: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{database_file}")
    yield engine
    engine.dispose()


def claude_api(
    fake: FakeClaude,
    script: sc.Script,
    *args: str,
    database_url: str,
    command: str = "run",
    stdin: str | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_API_")}
    env["CLAUDE_API_DATABASE_URL"] = database_url
    env["CLAUDE_API_CLAUDE_BIN"] = str(fake.install(script))
    if home is not None:  # where `claude-api hook` keeps its log
        env["HOME"] = str(home)
        env.pop("XDG_DATA_HOME", None)
    return subprocess.run(
        [_console_script(), *command.split(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        input=stdin,
        cwd=cwd,
    )


def rows(engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(table))]


def test_success_prints_the_result_and_records_the_run(
    fake: FakeClaude, database_file: Path, cli_engine: Engine
) -> None:
    task_id = "5b7d4e21-3f2a-4c1e-9a0c-1d2e3f4a5b6c"
    done = claude_api(
        fake,
        sc.success(),
        "Fix lint",
        "--task-id",
        task_id,
        "--project",
        "proj-9",
        database_url=f"sqlite:///{database_file}",
    )

    assert done.returncode == 0, done.stderr
    assert sc.SUCCESS_TEXT in done.stdout
    assert "completed" in done.stdout
    assert task_id in done.stdout
    assert "$0.0591" in done.stdout
    agents = rows(cli_engine, AgentUsage.__table__)
    assert sorted(row["agent_name"] for row in agents) == ["Explore", "code-reviewer", "main"]
    (skill,) = rows(cli_engine, SkillUsage.__table__)
    for row in [*agents, skill]:
        assert (row["status"], row["task_id"], row["project_id"]) == (
            "completed",
            task_id,
            "proj-9",
        )


def test_json_output_and_agent(fake: FakeClaude, database_file: Path, cli_engine: Engine) -> None:
    done = claude_api(
        fake,
        sc.simple("All good."),
        "Review",
        "--agent",
        "code-reviewer",
        "--json",
        database_url=f"sqlite:///{database_file}",
    )

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "completed"
    assert data["result"] == "All good."
    assert data["agent"] == "code-reviewer"
    assert data["cost_usd"] == 0.002
    assert data["exit_code"] == 0
    (call,) = fake.calls()
    assert call["argv"][-2:] == ["--agent", "code-reviewer"]
    (task,) = rows(cli_engine, AgentUsage.__table__)
    assert (task["agent_name"], task["task_id"]) == ("code-reviewer", data["task_id"])
    assert str(task["event_id"]) == data["event_id"]


def test_failed_task_exits_1(fake: FakeClaude, database_file: Path, cli_engine: Engine) -> None:
    done = claude_api(
        fake, sc.error_max_turns(), "Loop", "--json", database_url=f"sqlite:///{database_file}"
    )

    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["status"] == "failed"
    assert sc.MAX_TURNS_ERROR in data["error"]
    assert sc.MAX_TURNS_ERROR in done.stderr
    (task,) = rows(cli_engine, AgentUsage.__table__)
    assert (task["status"], task["error_message"]) == ("failed", data["error"])


def test_timeout_option(fake: FakeClaude, database_file: Path, cli_engine: Engine) -> None:
    done = claude_api(
        fake,
        sc.Script([sc.init()], hang=True),
        "Wait",
        "--timeout",
        "1",
        database_url=f"sqlite:///{database_file}",
    )

    assert done.returncode == 1
    assert "timed out after 1s" in done.stderr
    (task,) = rows(cli_engine, AgentUsage.__table__)
    assert task["status"] == "failed"


def test_task_runs_when_the_database_cannot_be_opened(fake: FakeClaude, tmp_path: Path) -> None:
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("")
    done = claude_api(
        fake,
        sc.simple("Still ran."),
        "Go",
        database_url=f"sqlite:///{not_a_directory / 'analytics.db'}",
    )

    assert done.returncode == 0, done.stderr
    assert "Still ran." in done.stdout
    assert "database cannot be opened" in done.stderr


@pytest.mark.parametrize("task_id", ["cli-1", "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c\t"])
def test_a_task_id_that_is_not_a_uuid_is_refused(
    fake: FakeClaude, database_file: Path, cli_engine: Engine, task_id: str
) -> None:
    done = claude_api(
        fake, sc.simple(), "Go", "--task-id", task_id, database_url=f"sqlite:///{database_file}"
    )

    assert done.returncode == 2
    assert "is not a UUID" in done.stderr and "nothing was run" in done.stderr
    assert fake.calls() == []
    assert rows(cli_engine, AgentUsage.__table__) == []


def test_a_task_id_that_has_run_is_refused(
    fake: FakeClaude, database_file: Path, cli_engine: Engine
) -> None:
    url = f"sqlite:///{database_file}"
    first = json.loads(claude_api(fake, sc.simple(), "Go", "--json", database_url=url).stdout)
    again = claude_api(fake, sc.simple(), "Go", "--task-id", first["task_id"], database_url=url)

    assert again.returncode == 2
    assert "has already run" in again.stderr
    assert len(fake.calls()) == 1


def test_run_then_import_then_hook_record_the_task_once(
    fake: FakeClaude, database_file: Path, cli_engine: Engine, tmp_path: Path
) -> None:
    """The commands as a user runs them: `run` with a project and an agent, then `import` of
    the transcripts Claude Code wrote, then the SessionEnd hook of the same session."""
    url = f"sqlite:///{database_file}"
    work = tmp_path / "work"
    work.mkdir()
    run = claude_api(
        fake,
        sc.success(),
        "Fix lint",
        "--project",
        "web",
        "--agent",
        "lead",
        "--json",
        database_url=url,
        cwd=work,
    )
    assert run.returncode == 0, run.stderr
    task_id = json.loads(run.stdout)["task_id"]
    transcript = fake.transcript_path(task_id, work)
    assert transcript.exists()

    imported = claude_api(
        fake,
        sc.success(),
        str(fake.projects),
        "--idle-minutes",
        "0",
        "--json",
        database_url=url,
        command="import",
    )
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["events"] == 4  # its own finishes of the same rows
    payload = {
        "hook_event_name": "SessionEnd",
        "session_id": task_id,
        "transcript_path": str(transcript),
        "cwd": str(work),
        "reason": "other",
    }
    hooked = claude_api(
        fake,
        sc.success(),
        database_url=url,
        command="hook",
        stdin=json.dumps(payload),
        home=tmp_path / "home",
    )
    assert hooked.returncode == 0, hooked.stderr
    assert hooked.stderr == ""
    hook_env = {"HOME": str(tmp_path / "home")}
    wait_drained(hook_env)  # the worker the hook started records the session
    assert hook_log(hook_env) == ""

    agents = rows(cli_engine, AgentUsage.__table__)
    skills = rows(cli_engine, SkillUsage.__table__)
    assert sorted(row["agent_name"] for row in agents) == ["Explore", "code-reviewer", "lead"]
    assert [row["skill_name"] for row in skills] == ["lint-fix"]
    for row in [*agents, *skills]:
        assert (row["task_id"], row["project_id"], row["status"]) == (task_id, "web", "completed")
