"""`claude-api budgets`: set, list, check and remove spending limits, through the canned GraphQL
operations (against --url, or in-process against the local database)."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated, Any

import typer

from claude_api.client import output
from claude_api.client.api import open_api
from claude_api.client.options import JsonOption, TzOption, UrlOption
from claude_api.client.output import Column
from claude_api.config import Settings

logger = logging.getLogger(__name__)

budgets_app = typer.Typer(
    help="Budgets: what an agent, a skill, a project or everything may spend per day, week or "
    "month. A spent deny budget stops new subagents and skills (the PreToolUse hook that "
    "`claude-api hook install` adds) and new tasks (`claude-api run`).",
    no_args_is_help=True,
)


class Per(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class Action(StrEnum):
    WARN = "warn"
    DENY = "deny"


def _limit(budget: dict[str, Any]) -> str:
    if budget["unit"] == "USD":
        return output.money(budget["limitUsd"])
    return f"{output.tokens(budget['limitTokens'])} tokens"


def _amount(unit: str, value: float | None) -> str:
    return output.money(value) if unit == "USD" else output.tokens(value)


def _status_row(status: dict[str, Any]) -> dict[str, Any]:
    budget = status["budget"]
    unit = budget["unit"]
    return {
        "label": budget["label"],
        "limit": _limit(budget),
        "spent": _amount(unit, status["spent"]),
        "remaining": _amount(unit, status["remaining"]),
        "forecast": _amount(unit, status["forecast"]),
        "state": "spent" if status["exhausted"] else "ok",
    }


BUDGET_COLUMNS = [
    Column("id", "ID", numeric=True),
    Column("label", "Budget"),
    Column("limit", "Limit", numeric=True),
    Column("action", "Action"),
    Column("tz", "Time zone"),
]
# Narrow terminals lose what is left and the forecast first, the state last.
STATUS_COLUMNS = [
    Column("label", "Budget", keep=True),
    Column("limit", "Limit", numeric=True, priority=3),
    Column("spent", "Spent", numeric=True, priority=2),
    Column("remaining", "Left", numeric=True, priority=5),
    Column("forecast", "Forecast", numeric=True, priority=4),
    Column("state", "State", priority=1),
]


@budgets_app.command("set")
def budgets_set(
    per: Annotated[Per, typer.Option("--per", help="The period: a day, ISO week or month.")],
    agent: Annotated[
        str | None, typer.Option("--agent", help="Limit this agent.", show_default=False)
    ] = None,
    skill: Annotated[
        str | None, typer.Option("--skill", help="Limit this skill.", show_default=False)
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="Limit this project (with --agent or --skill: that one, in this project).",
            show_default=False,
        ),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Limit every agent and skill together.")
    ] = False,
    usd: Annotated[
        float | None, typer.Option("--usd", help="The limit in US dollars.", show_default=False)
    ] = None,
    tokens: Annotated[
        int | None,
        typer.Option("--tokens", help="The limit in tokens (input, output and cache).", min=1),
    ] = None,
    action: Annotated[
        Action,
        typer.Option(
            "--action", help="deny: stop new subagents, skills and tasks; warn: only say so."
        ),
    ] = Action.DENY,
    tz: TzOption = "UTC",
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Set a budget; setting one of the same scope, period and unit again changes it.

    Example: claude-api budgets set --agent code-reviewer --per day --usd 20 --tz Europe/Paris
    """
    if agent is not None and skill is not None:
        raise typer.BadParameter("give --agent or --skill, not both")
    if everything and (agent or skill or project):
        raise typer.BadParameter("--all limits everything: give no --agent, --skill or --project")
    if not (everything or agent or skill or project):
        raise typer.BadParameter("say what to limit: --agent, --skill, --project or --all")
    if (usd is None) == (tokens is None):
        raise typer.BadParameter("give the limit with --usd or with --tokens (one of them)")
    if usd is not None and not usd > 0:
        raise typer.BadParameter("--usd must be above 0")
    variables = {
        "period": per.value.upper(),
        "kind": "AGENT" if agent else "SKILL" if skill else None,
        "name": agent or skill,
        "projectId": project,
        "usd": usd,
        "tokens": tokens,
        "action": action.value.upper(),
        "tz": tz,
    }
    with open_api(url) as api:
        budget = api.run(
            "SetBudget",
            budget={key: value for key, value in variables.items() if value is not None},
        )["setBudget"]
    if json_output:
        output.print_json(budget)
        return
    output.info(
        f"budget {budget['id']}: '{budget['label']}' of {_limit(budget)}, "
        f"{budget['action'].lower()} once spent (days in {budget['tz']})"
    )


@budgets_app.command("list")
def budgets_list(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Show every budget.

    Example: claude-api budgets list
    """
    with open_api(url) as api:
        budgets = api.run("Budgets")["budgets"]
    if json_output:
        output.print_json(budgets)
    elif not budgets:
        output.info("no budgets yet: claude-api budgets set --agent NAME --per day --usd 20")
    else:
        rows = [
            {**budget, "limit": _limit(budget), "action": budget["action"].lower()}
            for budget in budgets
        ]
        output.print_table(rows, BUDGET_COLUMNS, title="Budgets")


@budgets_app.command("status")
def budgets_status(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Show each budget in its current period, spent ones first: spent so far (running
    subagents and skills included), what is left, and the forecast of the period's end at its
    pace so far.

    Example: claude-api budgets status --json
    """
    with open_api(url) as api:
        statuses = api.run("BudgetStatus")["budgetStatus"]
    if json_output:
        output.print_json(statuses)
        return
    if not statuses:
        output.info("no budgets yet: claude-api budgets set --agent NAME --per day --usd 20")
        return
    print_statuses(statuses, title="Budgets")


def print_statuses(statuses: list[dict[str, Any]], *, title: str) -> None:
    """Budget statuses (`BudgetStatus` answers) as a table, then a line for each spent one
    saying what it stops."""
    output.print_table([_status_row(s) for s in statuses], STATUS_COLUMNS, title=title)
    for status in statuses:
        if status["exhausted"]:
            what = "denies" if status["budget"]["action"] == "DENY" else "warns of"
            output.print_line(f"{status['message']} ({what} new subagents, skills and tasks)")
    # Per budget: budgets overlap (everything's holds a project's), so a sum would count twice.
    unpriced = [
        f"{s['unpricedInvocations']:,} of '{s['budget']['label']}'"
        for s in statuses
        if s["budget"]["unit"] == "USD" and s["unpricedInvocations"]
    ]
    if unpriced:
        output.info(
            f"invocations that report no cost are left out of USD spends: {', '.join(unpriced)}"
        )


@budgets_app.command("remove")
def budgets_remove(
    budget_id: Annotated[
        int, typer.Argument(metavar="ID", help="The budget's ID, as `budgets list` shows it.")
    ],
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove a budget.

    Example: claude-api budgets remove 3
    """
    with open_api(url) as api:
        budget = api.run("RemoveBudget", id=budget_id)["removeBudget"]
    if json_output:
        output.print_json(budget)
    else:
        output.info(f"budget {budget['id']} ('{budget['label']}') removed")


def task_refusal(settings: Settings, *, agent: str | None, project: str | None) -> str | None:
    """Why a deny budget forbids a task of `agent` (None: Claude Code's own) in `project`, or
    None when it may run: asked of the server at CLAUDE_API_URL, else of the database, as the
    PreToolUse hook asks. A spent warn budget is told on stderr; a check that fails is logged
    and the task runs."""
    from claude_api.executor import DEFAULT_AGENT
    from claude_api.guardrails.launch import launch_decision
    from claude_api.guardrails.verdicts import DENY, WARN

    name = agent or DEFAULT_AGENT
    try:
        decision = launch_decision(
            "agent",
            name,
            project_id=project,
            url=settings.url,
            key=settings.api_key.get_secret_value() if settings.api_key else None,
            database_url=settings.database_url,
        )
    except Exception as error:
        logger.warning("budgets not checked, the task runs: %s", error)
        return None
    if decision.decision == WARN:
        output.info(f"warning: {decision.text}")
    return decision.text if decision.decision == DENY else None
