"""The CLI as people use it every day: tables that fit the terminal, counts as integers, short
date forms, export to standard output, and errors that read as one sentence, never a
traceback, a library's wording or a database made by a read."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.cli_support import SURFACES, Cli, cli
from tests.factories import add_events, make_event, make_events

__all__ = ["cli"]

LONG_NAME = "feature-dev:code-architect-with-a-rather-long-plugin-name"
RULE = "─"


@pytest.fixture
def varied(engine: Engine) -> None:
    """Agents with short and long names, skills, over a few days of May 2026."""
    start = datetime(2026, 5, 1, 9, tzinfo=UTC)
    events = [
        make_event(name=name, timestamp=start + timedelta(hours=i), cost_usd=0.5 + i)
        for i, name in enumerate(["Explore", "Plan", LONG_NAME, LONG_NAME + "-2"])
    ]
    events += [
        make_event(kind="skill", name=name, timestamp=start + timedelta(days=1, hours=i))
        for i, name in enumerate(["pdf", LONG_NAME])
    ]
    add_events(engine, *events)


def said(text: str) -> str:
    """What a usage error says, without the box drawn around it and its line breaks."""
    return " ".join(line.strip(" │╭╮╰╯─") for line in text.splitlines())


def table_bodies(printed: str) -> list[list[str]]:
    """The rows of every table printed: the lines after a header's rule, up to a blank line."""
    bodies: list[list[str]] = []
    current: list[str] | None = None
    for line in printed.splitlines():
        if line.strip().startswith(RULE):
            current = []
            bodies.append(current)
        elif current is not None and not line.strip():
            current = None
        elif current is not None:
            current.append(line)
    return bodies


TABLE_COMMANDS = [
    ["agents", "stats"],
    ["skills", "stats"],
    ["agents", "leaderboard"],
    ["agents", "leaderboard", "--by", "cost"],
    ["agents", "leaderboard", "--by", "success-rate", "--min-invocations", "1"],
    ["agents", "leaderboard", "--by", "duration", "--min-invocations", "1"],
    ["skills", "leaderboard", "--by", "tokens"],
    ["agents", "history", LONG_NAME, "--since", "2026-04-28", "--until", "2026-05-03"],
    ["analytics", "report", "--date", "2026-05-01"],
]


@pytest.mark.usefixtures("varied")
@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("command", TABLE_COMMANDS, ids=" ".join)
def test_tables_fit_the_terminal_and_keep_the_name(
    cli: Cli, command: list[str], width: int
) -> None:
    for surface in SURFACES:
        printed = cli.run(surface, *command, COLUMNS=str(width)).stdout
        lines = printed.splitlines()
        assert lines, command
        assert max(map(len, lines)) <= width, printed
        bodies = table_bodies(printed)
        assert bodies, printed
        names = [line for line in lines if "Name" in line.split()]
        if command[0] != "analytics" and command[1] != "history":
            assert names, f"no Name column at {width} columns:\n{printed}"
        for body in bodies:
            # One line per row: a name too long is cut with an ellipsis, never wrapped.
            for line in body:
                assert line.split()[0] not in ("-", ""), printed
        if command[1] in ("stats", "leaderboard") and command[0] == "agents":
            for body in bodies:
                long_rows = [line for line in body if "feature-dev:" in line]
                assert len(long_rows) == 2, printed
                assert all(LONG_NAME in line or "…" in line for line in long_rows), printed


@pytest.mark.parametrize("width", [80, 60])
def test_a_narrow_terminal_drops_numbers_before_the_name(
    cli: Cli, engine: Engine, width: int
) -> None:
    add_events(engine, make_event(name=LONG_NAME), make_event(name="Plan"))
    printed = cli.run("in-process", "agents", "stats", COLUMNS=str(width)).stdout
    header = next(line for line in printed.splitlines() if "Runs" in line)
    assert header.split()[0] == "Name"
    assert max(map(len, printed.splitlines())) <= width
    row = next(line for line in printed.splitlines() if line.strip().startswith("feature-dev"))
    assert row.split()[1] == "1"  # the runs, beside the shortened name


def test_counts_print_as_integers(cli: Cli, engine: Engine) -> None:
    runs = 1001
    add_events(engine, *make_events(runs, name="Explore"))
    printed = cli.both("agents", "leaderboard")
    row = next(line for line in printed.splitlines() if "Explore" in line)
    assert row.split()[-1] == f"{runs:,}"


def test_the_stats_table_has_a_totals_row(cli: Cli, engine: Engine) -> None:
    costs = {"Explore": [0.25, 0.5], "Plan": [1.0], "debugger": [None]}
    add_events(
        engine,
        *(make_event(name=name, cost_usd=cost) for name, spent in costs.items() for cost in spent),
    )
    printed = cli.both("agents", "stats")
    total = next(line for line in printed.splitlines() if line.split()[:1] == ["Total"])
    runs = sum(len(spent) for spent in costs.values())
    known = sum(cost for spent in costs.values() for cost in spent if cost is not None)
    assert total.split()[1] == str(runs)
    assert f"${known:,.2f}" in total.split()


# ---- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_since_takes_spans_back_from_now(cli: Cli, engine: Engine, surface: str) -> None:
    now = datetime.now(UTC)
    ages = [timedelta(hours=5), timedelta(days=3), timedelta(days=10), timedelta(days=20)]
    add_events(engine, *(make_event(name="Explore", timestamp=now - age) for age in ages))
    for since, inside in (("24h", 1), ("7d", 2), ("2w", 3), ("30d", 4)):
        stats = cli.json(surface, "agents", "stats", "Explore", "--since", since)
        assert stats["invocations"] == inside, since


@pytest.mark.parametrize("surface", SURFACES)
def test_since_takes_day_words_and_compact_dates(cli: Cli, engine: Engine, surface: str) -> None:
    now = datetime.now(UTC)
    today = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    add_events(
        engine,
        make_event(name="Plan", timestamp=today + timedelta(seconds=1)),
        make_event(name="Plan", timestamp=today - timedelta(hours=12)),
        make_event(name="Plan", timestamp=today - timedelta(days=3)),
    )
    assert cli.json(surface, "agents", "stats", "Plan", "--since", "today")["invocations"] == 1
    assert cli.json(surface, "agents", "stats", "Plan", "--since", "yesterday")["invocations"] == 2
    compact = (today - timedelta(days=3)).strftime("%Y%m%d")
    iso = (today - timedelta(days=3)).strftime("%Y-%m-%d")
    by_compact = cli.json(surface, "agents", "stats", "Plan", "--since", compact)
    assert by_compact == cli.json(surface, "agents", "stats", "Plan", "--since", iso)
    assert by_compact["invocations"] == 3
    assert cli.json(surface, "agents", "stats", "Plan", "--until", "today")["invocations"] == 2


def test_since_after_until_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("in-process", "agents", "leaderboard", "--since", "today", "--until", "7d")
    assert result.exit_code == 2
    assert "is after --until" in said(result.stderr)


@pytest.mark.parametrize(
    ("command", "value"),
    [
        (["agents", "stats", "--since"], "7x"),
        (["agents", "stats", "--until"], "2026-02-30"),
        (["analytics", "report", "--date"], "2026-13-01"),
        (["analytics", "report", "--date"], "7d"),
    ],
)
def test_bad_dates_say_which_forms_work_in_plain_words(
    cli: Cli, command: list[str], value: str
) -> None:
    result = cli.run("in-process", *command, value)
    assert result.exit_code == 2
    assert repr(value) in said(result.stderr)
    for internal in ("Value error", "%Y", "%m", "Traceback"):
        assert internal not in result.stderr
    assert "YYYY-MM-DD" in result.stderr and "YYYYMMDD" in result.stderr


# ---- export -----------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_export_to_standard_output(cli: Cli, engine: Engine, surface: str) -> None:
    events = make_events(3, name="Explore")
    add_events(engine, *events)
    result = cli.run(surface, "analytics", "export", "--output", "-")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted(row["event_id"] for row in rows) == sorted(str(e.event_id) for e in events)
    assert "exported 3 invocations to standard output" in result.stderr
    lines = cli.run(surface, "analytics", "export", "-o", "-", "--format", "jsonl").stdout
    assert len(lines.splitlines()) == 3


def test_an_unknown_extension_is_refused(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    add_events(engine, make_event())
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "usage.xlsx"
    result = cli.run("in-process", "analytics", "export", "--output", str(target))
    assert result.exit_code == 2
    text = said(result.stderr)
    assert ".csv" in text and ".jsonl" in text and ".ndjson" in text
    assert list(target.parent.iterdir()) == []
    forced = cli.run("in-process", "analytics", "export", "-o", str(target), "--format", "csv")
    assert forced.exit_code == 0 and target.read_text().startswith("kind,name,")


# ---- the database -----------------------------------------------------------------------------


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CLAUDE_API_DATABASE_URL": database_url,
        "COLUMNS": "80",
    }
    env.pop("CLAUDE_API_URL", None)
    env.pop("CLAUDE_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "claude_api.client", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("url", ["not a url", "nonsense://x/y", "sqlite://host:port:bad/x.db"])
def test_a_bad_database_url_is_one_line(url: str) -> None:
    result = run_cli("agents", "stats", database_url=url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "CLAUDE_API_DATABASE_URL" in result.stderr


@pytest.mark.parametrize("url", ["nonsense://x/y", "mysql://root@localhost/analytics"])
def test_an_unsupported_database_is_named_without_library_internals(url: str) -> None:
    result = run_cli("agents", "stats", database_url=url)
    assert result.returncode == 1
    scheme = url.split(":")[0]
    assert f"{scheme!r} is not a database this service stores in" in result.stderr
    assert "sqlite:///" in result.stderr and "postgresql+psycopg://" in result.stderr
    assert "plugin" not in result.stderr and "sqlalchemy" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["agents", "stats"],
        ["skills", "leaderboard"],
        ["agents", "history", "Explore"],
        ["analytics", "report"],
        ["analytics", "export", "-o", "-"],
    ],
)
def test_a_read_never_creates_the_database(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "not-yet" / "analytics.db"
    result = run_cli(*command, database_url=f"sqlite:///{missing}")
    assert result.returncode == 1
    assert f"no database at {missing} yet" in result.stderr
    assert "claude-api import" in result.stderr and "claude-api demo" in result.stderr
    assert not missing.parent.exists()
