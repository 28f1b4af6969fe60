"""`claude-api tasks list|show` and `GET /v1/tasks`: whole tasks, the agents and skills each
used, and each task as a tree with the cost of every subtree, over HTTP and in-process."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from claude_api.events import Kind, Status, UsageEvent
from tests import expected
from tests.cli_support import SURFACES, Cli, assert_fits, cli, table_row
from tests.factories import BASE_TIME, add_events, make_event

__all__ = ["cli"]


def a_task(task_id: str, start: timedelta, helper: str = "reviewer") -> list[UsageEvent]:
    """A main loop that ran a subagent `helper`, which used a skill that failed, and a skill
    of its own without a cost."""
    at = BASE_TIME + start
    main = make_event(name="orchestrator", task_id=task_id, timestamp=at, cost_usd=0.5)
    sub = make_event(
        name=helper,
        task_id=task_id,
        parent_id=main.event_id,
        timestamp=at + timedelta(seconds=5),
        duration_seconds=30.0,
        cost_usd=1.25,
    )
    skill = make_event(
        kind="skill",
        name="pdf",
        task_id=task_id,
        parent_id=sub.event_id,
        timestamp=at + timedelta(seconds=6),
        status=Status.FAILED,
        error_message="bad file",
        cost_usd=0.125,
    )
    unpriced = make_event(
        kind="skill",
        name="xlsx",
        task_id=task_id,
        parent_id=main.event_id,
        timestamp=at + timedelta(seconds=7),
        cost_usd=None,
    )
    return [main, sub, skill, unpriced]


@pytest.fixture
def events(cli: Cli) -> list[UsageEvent]:
    stored = [
        *a_task("t-1", timedelta()),
        *a_task("t-2", timedelta(hours=1), helper="planner"),
        *a_task("t-3", timedelta(hours=2)),
    ]
    add_events(cli.engine, *stored)
    return stored


def test_rest_tasks_of_an_agent_describe_the_whole_task(cli: Cli, events: list[UsageEvent]) -> None:
    body = httpx.get(f"{cli.url}/v1/tasks", params={"agent": "reviewer"}).json()
    assert [task["task_id"] for task in body["items"]] == ["t-3", "t-1"]
    for task in body["items"]:
        whole = [e for e in events if e.task_id == task["task_id"]]
        totals = expected.totals(whole)
        for field in ("invocations", "completed", "failed", "running", "unpriced_invocations"):
            assert task[field] == totals[field], field
        assert task["total_cost_usd"] == pytest.approx(totals["total_cost_usd"])
        assert task["agents"] == sorted({e.name for e in whole if e.kind is Kind.AGENT})
        assert task["skills"] == sorted({e.name for e in whole if e.kind is Kind.SKILL})
        # The main loop completed: a skill's failure inside does not fail the task.
        assert task["status"] == "completed"
        end = max(e.finished_at for e in whole if e.finished_at is not None)
        assert task["duration_seconds"] == pytest.approx(
            (end - min(e.timestamp for e in whole)).total_seconds()
        )


@pytest.mark.parametrize("surface", SURFACES)
def test_tasks_list_json_and_table(cli: Cli, events: list[UsageEvent], surface: str) -> None:
    items = cli.json(surface, "tasks", "list", "--skill", "pdf", "--limit", "2")
    assert [item["taskId"] for item in items] == ["t-3", "t-2"]
    t2 = [e for e in events if e.task_id == "t-2"]
    assert items[1]["agents"] == ["orchestrator", "planner"]
    assert items[1]["invocations"] == len(t2)
    assert items[1]["totalCostUsd"] == pytest.approx(expected.totals(t2)["total_cost_usd"])

    printed = cli.ok(surface, "tasks", "list", "--agent", "planner").stdout
    assert_fits(printed)
    row = table_row(printed, "t-2")
    assert f"${expected.totals(t2)['total_cost_usd']:,.2f}" in row
    assert any(cell.startswith("orchestra") for cell in row)  # the agents it used
    assert "t-1" not in printed


def test_tasks_list_on_a_narrow_terminal(cli: Cli, events: list[UsageEvent]) -> None:
    narrow = cli.run("in-process", "tasks", "list", COLUMNS="60")
    assert narrow.exit_code == 0
    assert_fits(narrow.stdout, 60)
    # The task and the agents it used stay when other columns go.
    assert any(cell.startswith("orchestra") for cell in table_row(narrow.stdout, "t-3"))


def test_tasks_list_usage_errors(cli: Cli, events: list[UsageEvent]) -> None:
    both = cli.run("in-process", "tasks", "list", "--agent", "a", "--skill", "b")
    assert both.exit_code == 2
    assert "not both" in both.stderr
    empty = cli.run("in-process", "tasks", "list", "--agent", "nobody")
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "no task matches" in empty.stderr


@pytest.mark.parametrize("surface", SURFACES)
def test_tasks_show_tree_with_subtree_costs(
    cli: Cli, events: list[UsageEvent], surface: str
) -> None:
    main, sub, skill, unpriced = (e for e in events if e.task_id == "t-1")
    task = cli.json(surface, "tasks", "show", "t-1")
    by_id = {item["eventId"]: item for item in task["invocations"]}
    assert by_id[str(main.event_id)]["totalCostUsd"] == pytest.approx(
        main.cost_usd + sub.cost_usd + skill.cost_usd
    )
    assert by_id[str(main.event_id)]["unpricedInvocations"] == 1
    assert by_id[str(sub.event_id)]["totalCostUsd"] == pytest.approx(sub.cost_usd + skill.cost_usd)
    assert by_id[str(unpriced.event_id)]["totalCostUsd"] is None
    assert task["summary"]["skills"] == ["pdf", "xlsx"]

    printed = cli.ok(surface, "tasks", "show", "t-1").stdout
    assert_fits(printed)
    lines = printed.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if text in line)
        for text in ("orchestrator (agent)", "└ reviewer (agent)", "└ pdf (skill)", "└ xlsx")
    ]
    assert order == sorted(order)  # each under the one that ran it, siblings by start
    own, total = main.cost_usd, main.cost_usd + sub.cost_usd + skill.cost_usd
    assert table_row(printed, "orchestrator (agent)")[3:5] == [f"${own:.2f}", f"${total:.2f}"]
    assert table_row(printed, "└ xlsx (skill)")[3:5] == ["-", "-"]


def test_tasks_show_unknown_task(cli: Cli, events: list[UsageEvent]) -> None:
    for surface in SURFACES:
        result = cli.run(surface, "tasks", "show", "t-404")
        assert result.exit_code == 1
        assert "t-404" in result.stderr
