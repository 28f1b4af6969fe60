"""Start-up: `claude-api --help` imports no command module and no heavy library; each command
loads its own module when it runs, and the root's help lists every command. A command on a
migrated database checks its revision without loading alembic, and in-process without httpx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from claude_api.client.app import COMMANDS, app, load_command
from claude_api.models.db import (
    HEAD_REVISION,
    VERSION_TABLE,
    current_revision,
    head_revision,
    make_engine,
    migrations_head_revision,
    upgrade,
)

HEAVY = ("sqlalchemy", "sqlmodel", "strawberry", "gql", "httpx", "alembic", "graphql", "uvicorn")

PROBE = """
import sys
HEAVY = {HEAVY}
from claude_api.client.app import main
sys.argv = ["claude-api", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
heavy = sorted({name.split(".")[0] for name in sys.modules} & HEAVY)
print("LOADED", *heavy, file=sys.stderr)
"""


def run_probe(*args: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """The standard output of a real `claude-api ARGS` process and the heavy libraries it has
    imported when it ends."""
    probe = PROBE.replace("{HEAVY}", repr(set(HEAVY)))
    result = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", **(env or {})},
    )
    line = next(line for line in result.stderr.splitlines() if line.startswith("LOADED"))
    return result.stdout, line.split()[1:]


def loaded_after(*args: str) -> list[str]:
    """The heavy libraries a real `claude-api ARGS` process has imported when it ends."""
    return run_probe(*args)[1]


def test_help_imports_no_heavy_library() -> None:
    assert loaded_after("--help") == []


def test_a_command_imports_what_it_needs() -> None:
    # Asking for the agents' help loads the agents commands and their GraphQL client only.
    loaded = loaded_after("agents", "--help")
    assert "gql" in loaded
    assert "uvicorn" not in loaded and "alembic" not in loaded


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_listed_command_loads_with_the_help_listed(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    real = " ".join((command.help or "").split())
    listed = COMMANDS[name][2]
    # The listed line is the command's own help, or its first words up to where it shortens it.
    assert real.split(" ")[:3] == listed.split(" ")[:3], (real, listed)


def test_the_root_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed


def local_env(directory: Path, url: str) -> dict[str, str]:
    return {
        "CLAUDE_API_DATABASE_URL": url,
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CONFIG_HOME": str(directory / "config"),
    }


def test_a_query_on_a_migrated_database_loads_neither_alembic_nor_httpx(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    stdout, loaded = run_probe("agents", "stats", "--json", env=local_env(tmp_path, url))
    assert json.loads(stdout) == []
    assert "alembic" not in loaded and "httpx" not in loaded
    assert {"sqlalchemy", "strawberry", "gql"} <= set(loaded)


def test_a_query_on_an_older_database_migrates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    engine = make_engine(url)
    upgrade(engine, "0005")
    try:
        stdout, loaded = run_probe("agents", "stats", "--json", env=local_env(tmp_path, url))
        assert json.loads(stdout) == []
        assert "alembic" in loaded
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def test_the_head_revision_is_the_newest_migration() -> None:
    # Adding a migration means moving HEAD_REVISION to it: the start-up check compares with it.
    assert head_revision() == HEAD_REVISION == migrations_head_revision()


def test_the_current_revision_is_read_as_alembic_stores_it(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None  # never migrated
        upgrade(engine, "0005")
        assert current_revision(engine) == "0005"
        upgrade(engine)
        assert current_revision(engine) == HEAD_REVISION
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES ('0004')"))
        with pytest.raises(ValueError, match="several versions"):
            current_revision(engine)
    finally:
        engine.dispose()
