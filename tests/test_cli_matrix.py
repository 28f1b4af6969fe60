"""Every command that answers the product's questions, run the way the issue asks: in-process
and with --url against a live server, as a table at 80 and at 60 columns and as --json, on
SQLite and PostgreSQL (the `engine` fixture). Each gives the same answer both ways, keeps its
name column on a narrow terminal, fits it, and holds values computed here from the events."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from claude_api.events import Status, UsageEvent
from tests.cli_support import SURFACES, Cli, assert_fits, table_row
from tests.cli_support import cli as cli  # the fixture
from tests.factories import add_events, make_event

START = datetime(2026, 5, 1, 9, tzinfo=UTC)
RANGE = ("--since", "2026-05-01", "--until", "2026-05-03")
LONG_AGENT = "feature-dev:code-architect-with-a-rather-long-plugin-name"
LONG_SKILL = "superpowers:systematic-debugging-of-long-names"
RULE = "─"


def events() -> list[UsageEvent]:
    """16 invocations over 1-2 May 2026: Explore six times on the 1st (one failure), each with
    a pdf skill under the first three; Plan five times on the 2nd; a long-named agent once,
    slow and unpriced; a long-named skill once. Projects web, api and none; two models and none.
    """
    explore = [
        make_event(
            name="Explore",
            task_id=f"t-{i}",
            timestamp=START + timedelta(hours=i),
            project_id="web" if i % 2 == 0 else "api",
            model="claude-sonnet-4-5" if i < 3 else "claude-opus-4-5",
            duration_seconds=10.0 * (i + 1),
            cost_usd=0.125 * (i + 1),
            status=Status.FAILED if i == 5 else Status.COMPLETED,
            error_message="boom" if i == 5 else None,
        )
        for i in range(6)
    ]
    pdf = [
        make_event(
            kind="skill",
            name="pdf",
            task_id=f"t-{i}",
            parent_id=explore[i].event_id,
            timestamp=START + timedelta(hours=i, minutes=1),
            project_id=explore[i].project_id,
            duration_seconds=2.0,
            cost_usd=0.0625,
        )
        for i in range(3)
    ]
    day_two = START + timedelta(days=1)
    plan = [
        make_event(
            name="Plan",
            task_id=f"p-{i}",
            timestamp=day_two + timedelta(hours=i),
            project_id="web",
            model="claude-opus-4-5",
            duration_seconds=100.0 + i,
            cost_usd=0.5,
        )
        for i in range(5)
    ]
    rare = [
        make_event(name=LONG_AGENT, task_id="p-9", timestamp=day_two, duration_seconds=900.0,
                   model=None, cost_usd=None, input_tokens=None, output_tokens=None),
        make_event(kind="skill", name=LONG_SKILL, task_id="p-9", timestamp=day_two,
                   project_id="api", duration_seconds=3.0, cost_usd=0.25),
    ]  # fmt: skip
    return [*explore, *pdf, *plan, *rare]


EVENTS = 16
ON_MAY_FIRST = 9


@dataclass(frozen=True)
class Command:
    """A command line, the first header of the table that names its rows, and checks of its
    --json answer and of its table."""

    args: tuple[str, ...]
    name_header: str
    check_json: Callable[[Any], None]
    check_table: Callable[[str], None]

    def __str__(self) -> str:
        return " ".join(self.args)


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


def _first_row(printed: str) -> list[str]:
    """The cells of the first row under the first table's header."""
    lines = printed.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith(RULE))
    return re.split(r"\s{2,}", lines[rule + 1].strip())


def _shortened(cell: str, name: str) -> bool:
    """`cell` shows `name`, whole or cut with an ellipsis."""
    return cell.strip() == name or (cell.endswith("…") and name.startswith(cell[:-1].strip()))


def _tasks_list_json(items: list[dict[str, Any]]) -> None:
    assert [item["taskId"] for item in items] == [
        "p-4", "p-3", "p-2", "p-1", "p-0", "p-9", "t-5", "t-4", "t-3", "t-2", "t-1", "t-0",
    ]  # fmt: skip
    t0 = next(item for item in items if item["taskId"] == "t-0")
    assert (t0["agents"], t0["skills"], t0["invocations"]) == (["Explore"], ["pdf"], 2)
    assert t0["totalCostUsd"] == pytest.approx(0.125 + 0.0625)


def _tasks_show_json(task: dict[str, Any]) -> None:
    assert [(i["kind"], i["name"]) for i in task["invocations"]] == [
        ("AGENT", "Explore"), ("SKILL", "pdf"),
    ]  # fmt: skip
    explore = task["invocations"][0]
    assert explore["totalCostUsd"] == pytest.approx(0.125 + 0.0625)


def _report_json(report: dict[str, Any]) -> None:
    assert report["totals"]["invocations"] == ON_MAY_FIRST
    assert report["totals"]["failed"] == 1
    assert _names(report["agents"]) == ["Explore"] and _names(report["skills"]) == ["pdf"]


def _stats_json(stats: dict[str, Any]) -> None:
    assert (stats["invocations"], stats["failed"]) == (6, 1)
    assert stats["totalCostUsd"] == pytest.approx(0.125 * 21)


def _totals_row(total: int) -> Callable[[str], None]:
    def check(printed: str) -> None:
        assert table_row(printed, "Total")[1] == f"{total:,}"

    return check


def _tasks_list_table(printed: str) -> None:
    assert _first_row(printed)[0] == "p-4"


def _tasks_show_table(printed: str) -> None:
    assert table_row(printed, "└ pdf (skill)")[1] == "completed"


def _p95_board_json(board: list[dict[str, Any]]) -> None:
    assert _names(board) == ["Plan", "Explore"]  # the one-run agent left out


def _p95_board_table(printed: str) -> None:
    assert table_row(printed, "1")[1] == "Plan"
    assert table_row(printed, "2")[1:2] == ["Explore"]


def _p50_board_json(board: list[dict[str, Any]]) -> None:
    assert _names(board) == [LONG_AGENT, "Plan", "Explore"]
    assert [entry["invocations"] for entry in board] == [1, 5, 6]


def _p50_board_table(printed: str) -> None:
    assert _shortened(table_row(printed, "1")[1], LONG_AGENT)


def _stats_sorted_json(items: list[dict[str, Any]]) -> None:
    assert _names(items) == [LONG_AGENT, "Plan", "Explore"]


def _stats_sorted_table(printed: str) -> None:
    assert _shortened(_first_row(printed)[0], LONG_AGENT)


def _skills_sorted_json(items: list[dict[str, Any]]) -> None:
    assert [(item["name"], item["invocations"]) for item in items] == [("pdf", 3), (LONG_SKILL, 1)]


def _skills_sorted_table(printed: str) -> None:
    assert _first_row(printed)[:2] == ["pdf", "3"]


def _history_json(history: dict[str, Any]) -> None:
    assert [(b["periodStart"], b["invocations"]) for b in history["buckets"]] == [
        ("2026-05-01", ON_MAY_FIRST), ("2026-05-02", EVENTS - ON_MAY_FIRST),
    ]  # fmt: skip
    assert history["totals"]["invocations"] == EVENTS


def _models_json(found: dict[str, Any]) -> None:
    assert [(m["model"], m["invocations"]) for m in found["models"]] == [
        ("claude-opus-4-5", 8), ("claude-sonnet-4-5", 7), (None, 1),
    ]  # fmt: skip


def _projects_json(found: dict[str, Any]) -> None:
    assert [(p["projectId"], p["invocations"]) for p in found["projects"]] == [
        ("web", 10), ("api", 5), (None, 1),
    ]  # fmt: skip


def _report_table(printed: str) -> None:
    assert table_row(printed, "Invocations")[1:3] == [str(ON_MAY_FIRST), "0"]


def _stats_table(printed: str) -> None:
    assert table_row(printed, "invocations")[1].startswith("6 (5 completed")


COMMANDS = [
    Command(("tasks", "list", *RANGE), "Task", _tasks_list_json, _tasks_list_table),
    Command(("tasks", "show", "t-0"), "Invocation", _tasks_show_json, _tasks_show_table),
    Command(
        ("agents", "leaderboard", "--by", "p95", *RANGE), "#", _p95_board_json, _p95_board_table
    ),
    Command(
        ("agents", "leaderboard", "--by", "p50", "--min-runs", "1", *RANGE),
        "#",
        _p50_board_json,
        _p50_board_table,
    ),
    Command(
        ("agents", "stats", "--sort", "p95", *RANGE),
        "Name",
        _stats_sorted_json,
        _stats_sorted_table,
    ),
    Command(
        ("skills", "stats", "--sort", "runs", *RANGE),
        "Name",
        _skills_sorted_json,
        _skills_sorted_table,
    ),
    Command(
        ("analytics", "history", "--period", "day", *RANGE),
        "Day",
        _history_json,
        _totals_row(EVENTS),
    ),
    Command(("models", *RANGE), "Model", _models_json, _totals_row(EVENTS)),
    Command(("projects", *RANGE), "Project", _projects_json, _totals_row(EVENTS)),
    Command(("analytics", "report", "--date", "2026-05-01"), "Name", _report_json, _report_table),
    Command(
        ("agents", "stats", "Explore", "--since", "20260501", "--until", "20260503"),
        "Failures",
        _stats_json,
        _stats_table,
    ),
]


def headers(printed: str) -> list[str]:
    """The first header cell of every table printed: the line above each header rule."""
    lines = printed.splitlines()
    return [
        lines[i - 1].strip().split("  ")[0] if lines[i - 1].strip() else ""
        for i, line in enumerate(lines)
        if line.strip().startswith(RULE) and i > 0
    ]


@pytest.fixture
def stored(cli: Cli) -> list[UsageEvent]:
    recorded = events()
    add_events(cli.engine, *recorded)
    return recorded


@pytest.fixture
def recorded(cli: Cli, stored: list[UsageEvent]) -> Cli:
    return cli


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_json_is_the_same_both_ways_and_right(recorded: Cli, command: Command) -> None:
    command.check_json(recorded.both_json(*command.args))


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_the_table_is_the_same_both_ways_fits_and_keeps_the_name(
    recorded: Cli, command: Command, width: int
) -> None:
    printed = {}
    for surface in SURFACES:
        result = recorded.run(surface, *command.args, COLUMNS=str(width))
        assert result.exit_code == 0, (surface, result.stdout, result.stderr)
        printed[surface] = result.stdout
    assert printed["http"] == printed["in-process"]
    table = printed["http"]
    assert_fits(table, width)
    assert command.name_header in headers(table), table
    command.check_table(table)


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_export_to_standard_output_both_ways(
    recorded: Cli, stored: list[UsageEvent], export_format: str
) -> None:
    ids = {str(event.event_id) for event in stored}
    for surface in SURFACES:
        result = recorded.run(
            surface, "analytics", "export", "-o", "-", "--format", export_format, *RANGE
        )
        assert result.exit_code == 0, result.stderr
        if export_format == "csv":
            rows = list(csv.DictReader(io.StringIO(result.stdout)))
        else:
            rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert {row["event_id"] for row in rows} == ids
        assert f"exported {EVENTS} invocations to standard output" in result.stderr
