"""`claude-api --help` and every analytics command's help say what it shows, with an example."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from claude_api.client.app import app

COMMANDS = [
    ["agents", "stats"],
    ["agents", "leaderboard"],
    ["agents", "history"],
    ["skills", "stats"],
    ["skills", "leaderboard"],
    ["skills", "history"],
    ["analytics", "report"],
    ["analytics", "export"],
]


def help_of(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_root_help_names_the_analytics_commands_with_an_example() -> None:
    printed = help_of()
    for noun in ("agents", "skills", "analytics"):
        assert f"│ {noun}" in printed
    assert "Example: claude-api agents leaderboard" in printed


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_command_says_what_it_shows_with_an_example(command: list[str]) -> None:
    printed = help_of(*command)
    assert f"Example: claude-api {' '.join(command)}" in printed
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    assert lines[0].startswith("Usage: claude-api")
    assert lines[1].startswith(("Show", "Export"))  # the first line of the docstring
    if command[-1] != "export":
        assert "--json" in printed
    assert "--url" in printed
