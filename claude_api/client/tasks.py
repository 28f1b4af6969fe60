"""`claude-api tasks`: which tasks ran, with which agents and skills, and each task as a tree."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from claude_api.client import output
from claude_api.client.api import open_api
from claude_api.client.options import (
    JsonOption,
    ProjectOption,
    SinceOption,
    TzOption,
    UntilOption,
    UrlOption,
    usage_filter,
)
from claude_api.client.output import Column

PAGE_SIZE = 200  # the API pages; the CLI asks for as many pages as --limit needs

tasks_app = typer.Typer(
    help="Tasks: which agents and skills each ran, and what each cost.",
    no_args_is_help=True,
)

# On a narrow terminal the agents and skills a task used stay longest, after its id.
LIST_COLUMNS = [
    Column("taskId", "Task", keep=True),
    Column("firstSeenAt", "Started", priority=6),
    Column("durationSeconds", "Time", output.duration, numeric=True, priority=5),
    Column("status", "Status", str.lower, priority=3),
    Column("totalCostUsd", "Cost", output.money, numeric=True, total=True, priority=2),
    Column("unpricedInvocations", "Unpriced", output.count, numeric=True, total=True, priority=8),
    Column("invocations", "Runs", output.count, numeric=True, total=True, priority=7),
    Column("agents", "Agents", ", ".join, priority=0),
    Column("skills", "Skills", ", ".join, priority=1),
]
TREE_COLUMNS = [
    Column("label", "Invocation", keep=True),
    Column("status", "Status", str.lower),
    Column("durationSeconds", "Time", output.duration, numeric=True),
    Column("costUsd", "Own cost", output.money, numeric=True),
    Column("totalCostUsd", "With all under it", output.money, numeric=True),
    Column("model", "Model"),
]


@tasks_app.command("list")
def tasks_list(
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only the tasks that ran this agent.")
    ] = None,
    skill: Annotated[
        str | None, typer.Option("--skill", help="Only the tasks that used this skill.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many.")] = 20,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """List tasks, the most recently active first.

    Each task whole: when it started, how long it took, its status and cost, and every agent
    and skill it used (--agent or --skill only choose which tasks).

    Example: claude-api tasks list --agent code-reviewer --since 2026-05-01
    """
    if agent is not None and skill is not None:
        raise typer.BadParameter("give --agent or --skill, not both", param_hint="'--skill'")
    kind, name = (
        ("AGENT", agent) if agent is not None else ("SKILL", skill) if skill else (None, None)
    )
    scope = usage_filter(project=project, since=since, until=until, tz=tz)
    items: list[dict[str, Any]] = []
    with open_api(url) as api:
        after = None
        while len(items) < limit:
            page = api.run(
                "TaskList",
                kind=kind,
                name=name,
                filter=scope,
                first=min(PAGE_SIZE, limit - len(items)),
                after=after,
            )["tasks"]
            items.extend(page["items"])
            if not page["hasNext"]:
                break
            after = page["nextCursor"]
    if json_output:
        output.print_json(items)
        return
    if not items:
        output.info("no task matches these options")
        return
    columns = output.priced_columns(items, LIST_COLUMNS)
    shown = [
        {**item, "firstSeenAt": output.moment(item["firstSeenAt"], tz).removesuffix(f" {tz}")}
        for item in items
    ]
    output.print_table(
        shown, columns, title="Tasks, most recent first", caption=f"time zone {tz}", totals=True
    )
    if page["hasNext"]:
        output.info(f"showing the {len(items):,} most recent; --limit shows more")


@tasks_app.command("show")
def tasks_show(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID", help="The task.")],
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a task as a tree of its invocations: the agent, its subagents and skills.

    Each with its status, time, its own cost and the cost of everything under it.

    Example: claude-api tasks show 2f8e0c1a-7d4b-4c1e-9a57-3b1f0e6d2c90
    """
    with open_api(url) as api:
        task = api.run("Task", id=task_id)["task"]
    if json_output:
        output.print_json(task)
        return
    summary = task["summary"]
    output.print_fields(
        [
            ("status", summary["status"].lower()),
            ("started", output.moment(summary["firstSeenAt"], tz)),
            ("time", output.duration(summary["durationSeconds"])),
            ("invocations", output.count(summary["invocations"])),
            ("total cost", output.money(summary["totalCostUsd"])),
            *output.unpriced_field(summary),
            ("total tokens", output.tokens(summary["totalTokens"])),
            ("agents", ", ".join(summary["agents"]) or output.MISSING),
            ("skills", ", ".join(summary["skills"]) or output.MISSING),
        ],
        title=f"Task {task['id']}",
    )
    output.print_line()
    output.print_table(tree_rows(task["invocations"]), TREE_COLUMNS)


def tree_rows(invocations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The invocations in tree order (each after the one that ran it, siblings in start
    order), each labelled with its kind and name indented by its depth."""
    known = {item["eventId"] for item in invocations}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for item in invocations:  # the API lists them in start order, which siblings keep
        parent = item["parentId"] if item["parentId"] in known else None
        if parent == item["eventId"]:
            parent = None
        children.setdefault(parent, []).append(item)
    rows: list[dict[str, Any]] = []
    placed: set[str] = set()

    def place(item: dict[str, Any], depth: int) -> None:
        if item["eventId"] in placed:  # a loop in the parent links: each invocation once
            return
        placed.add(item["eventId"])
        prefix = "  " * (depth - 1) + "└ " if depth else ""
        rows.append({**item, "label": f"{prefix}{item['name']} ({item['kind'].lower()})"})
        for child in children.get(item["eventId"], []):
            place(child, depth + 1)

    for root in children.get(None, []):
        place(root, 0)
    for item in invocations:  # only reachable through a loop: shown as roots
        place(item, 0)
    return rows
