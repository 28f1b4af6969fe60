"""`claude-api --help` and every analytics command's help say what it shows, with an example."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from typer.testing import CliRunner

from claude_api.client.app import COMMANDS as ROOT_COMMANDS
from claude_api.client.app import app, load_command

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


def every_command() -> list[list[str]]:
    """Every command and group under the root, as the words that name it."""
    found: list[list[str]] = [[]]

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        for name, subcommand in getattr(command, "commands", {}).items():
            walk(subcommand, [*path, name])

    for name in ROOT_COMMANDS:
        walk(load_command(name), [name])
    return found


@pytest.mark.parametrize("columns", [60, 80])
def test_every_help_is_wrapped_at_the_terminal_width(columns: int) -> None:
    """A narrow terminal: each paragraph of a help fills its lines, so that no line breaks
    where the docstring's source broke (Typer keeps a docstring's line breaks)."""
    for command in every_command():
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        start = next(n for n, line in enumerate(lines) if not line.strip()) + 1  # past Usage
        text = [line.rstrip() for line in lines[start:]]
        end = next((n for n, line in enumerate(text) if line.lstrip().startswith("╭")), len(text))
        for line, following in pairwise(text[:end]):
            if line.strip() and following.strip():
                room = columns - 1 - len(line)
                word = following.split()[0]
                assert len(word) + 1 > room, f"{' '.join(command)}: {line!r} could take {word!r}"
