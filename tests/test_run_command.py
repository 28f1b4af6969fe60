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
    fake: FakeClaude, script: sc.Script, *args: str, database_url: str
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_API_")}
    env["CLAUDE_API_DATABASE_URL"] = database_url
    env["CLAUDE_API_CLAUDE_BIN"] = str(fake.install(script))
    return subprocess.run(
        [_console_script(), "run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def rows(engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(table))]


def test_success_prints_the_result_and_records_the_run(
    fake: FakeClaude, database_file: Path, cli_engine: Engine
) -> None:
    done = claude_api(
        fake,
        sc.success(),
        "Fix lint",
        "--task-id",
        "cli-1",
        "--project",
        "proj-9",
        database_url=f"sqlite:///{database_file}",
    )

    assert done.returncode == 0, done.stderr
    assert sc.SUCCESS_TEXT in done.stdout
    assert "completed" in done.stdout
    assert "cli-1" in done.stdout
    assert "$0.0591" in done.stdout
    agents = rows(cli_engine, AgentUsage.__table__)
    assert sorted(row["agent_name"] for row in agents) == ["Explore", "code-reviewer", "default"]
    (skill,) = rows(cli_engine, SkillUsage.__table__)
    for row in [*agents, skill]:
        assert (row["status"], row["task_id"], row["project_id"]) == (
            "completed",
            "cli-1",
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
