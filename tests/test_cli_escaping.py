"""Recorded names cannot forge what the CLI prints: control and bidirectional characters in a
name come out as visible escapes in every table, one row per name; JSON keeps them exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from claude_api.models.db import make_engine, upgrade
from tests.factories import add_events, make_events

CLAUDE_API = Path(sys.executable).parent / "claude-api"

# Each recorded name and how a table must show it, written out by hand.
NAMES = {
    "helper\nadmin-agent": r"helper\nadmin-agent",
    "safe\u202eexe.cod": r"safe\u202eexe.cod",
    "tab\tbell\x07esc\x1b[2Jcsi\x9b31mdel\x7fcr\r": r"tab\tbell\x07esc\x1b[2Jcsi\x9b31mdel\x7fcr\r",
    "iso\u2066late\u2069lrm\u200erlm\u200falm\u061clre\u202a": (
        r"iso\u2066late\u2069lrm\u200erlm\u200falm\u061clre\u202a"
    ),
    "line\u2028para\u2029end": r"line\u2028para\u2029end",
    "plain-agent": "plain-agent",
}
HIDDEN = {
    *map(chr, range(0x20)),
    *map(chr, range(0x7F, 0xA0)),
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u2028",
    "\u2029",
} - {"\n"}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A database where agent number i (from 1) of NAMES ran i times."""
    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    engine = make_engine(url)
    upgrade(engine)
    for runs, name in enumerate(NAMES, start=1):
        add_events(engine, *make_events(runs, name=name))
    engine.dispose()
    return url


def cli(database_url: str, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_API_")}
    env.update(CLAUDE_API_DATABASE_URL=database_url, COLUMNS="200")
    result = subprocess.run(
        [str(CLAUDE_API), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def body(printed: str) -> list[str]:
    """The rows of the first table: the lines below its header rule, up to the blank line before
    its totals row or its end."""
    lines = printed.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip() and set(line.strip()) == {"─"})
    rows = lines[rule + 1 :]
    end = next((i for i, line in enumerate(rows) if not line.strip()), len(rows))
    return rows[:end]


def assert_nothing_hidden(printed: str) -> None:
    assert not HIDDEN & set(printed), sorted(map(hex, map(ord, HIDDEN & set(printed))))


@pytest.mark.parametrize(
    "command", [("agents", "stats"), ("agents", "leaderboard", "--limit", "100")]
)
def test_each_name_is_one_escaped_row(database_url: str, command: tuple[str, ...]) -> None:
    printed = cli(database_url, *command)
    assert_nothing_hidden(printed)
    rows = body(printed)
    assert len(rows) == len(NAMES), printed
    for runs, shown in enumerate(NAMES.values(), start=1):
        [row] = [row for row in rows if f" {shown} " in row]
        if command[1] == "stats":
            assert row.split()[:2] == [shown, str(runs)]


def test_one_agents_fields_and_title_are_escaped(database_url: str) -> None:
    name, shown = next(iter(NAMES.items()))
    printed = cli(database_url, "agents", "stats", name)
    assert_nothing_hidden(printed)
    assert shown in printed.splitlines()[0]


@pytest.mark.parametrize(
    "command", [("agents", "stats"), ("agents", "leaderboard", "--limit", "100")]
)
def test_json_keeps_the_names_exact(database_url: str, command: tuple[str, ...]) -> None:
    answer = json.loads(cli(database_url, *command, "--json"))
    assert sorted(entry["name"] for entry in answer) == sorted(NAMES)
