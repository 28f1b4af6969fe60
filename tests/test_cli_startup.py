"""Start-up: `claude-api --help` imports no command module and no heavy library; each command
loads its own module when it runs, and the root's help lists every command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from claude_api.client.app import COMMANDS, app, load_command

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


def loaded_after(*args: str) -> list[str]:
    """The heavy libraries a real `claude-api ARGS` process has imported when it ends."""
    probe = PROBE.replace("{HEAVY}", repr(set(HEAVY)))
    result = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    line = next(line for line in result.stderr.splitlines() if line.startswith("LOADED"))
    return line.split()[1:]


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
