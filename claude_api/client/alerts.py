"""`claude-api alerts`: add, list and remove alert rules and read their history, through the
canned GraphQL operations (against --url, or in-process against the local database). The
server evaluates the rules and calls their webhooks."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

import typer

from claude_api.client import output
from claude_api.client.api import open_api
from claude_api.client.options import JsonOption, UrlOption
from claude_api.client.output import Column

alerts_app = typer.Typer(
    help="Alert rules: a failure rate, a cost or a p95 duration above a threshold over a "
    "rolling window. `claude-api serve` evaluates them shortly after data arrives and posts each "
    "firing and resolution to the rule's webhook (JSON with a Slack-compatible `text`).",
    no_args_is_help=True,
)

_WINDOW = re.compile(r"([0-9]+)([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86_400}


class MetricChoice(StrEnum):
    FAILURE_RATE = "failure-rate"
    COST = "cost"
    P95_DURATION = "p95-duration"


RULE_COLUMNS = [
    Column("id", "ID", numeric=True),
    Column("label", "Rule"),
    Column("state", "State"),
    Column("now", "Now", numeric=True),
]
HISTORY_COLUMNS = [
    Column("at", "At", lambda value: output.moment(value)[:16], no_wrap=True),
    Column("ruleId", "Rule", numeric=True),
    Column("change", "Change"),
    Column("value", "Value", lambda v: output.MISSING if v is None else f"{v:.4g}", numeric=True),
    Column("delivery", "Delivery"),
]


def window_seconds(text: str) -> int:
    """`30m`, `1h`, `24h` or `7d` in seconds."""
    found = _WINDOW.fullmatch(text.strip().lower())
    if not found:
        raise typer.BadParameter(f"{text!r} is not a window such as 30m, 1h, 24h or 7d")
    return int(found.group(1)) * _UNITS[found.group(2)]


def threshold_of(metric: MetricChoice, text: str) -> float:
    """A failure rate as 20% or 0.2; a cost in USD ($50 or 50); a duration in seconds."""
    cleaned = text.strip().removeprefix("$").removesuffix("s")
    percent = cleaned.endswith("%")
    try:
        value = float(cleaned.removesuffix("%"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint="'--above'") from None
    if percent and metric is not MetricChoice.FAILURE_RATE:
        raise typer.BadParameter("only a failure rate is a percentage", param_hint="'--above'")
    return value / 100 if percent else value


def shown_value(rule: dict[str, Any], value: float | None) -> str:
    """A measure of `rule` (an `AlertRule` answer) as its metric reads: 20.0%, $5.00, 12.5s."""
    if value is None:
        return output.MISSING
    if rule["metric"] == "FAILURE_RATE":
        return output.percent(value)
    if rule["metric"] == "COST":
        return output.money(value)
    return output.duration(value)


@alerts_app.command("add")
def alerts_add(
    metric: Annotated[MetricChoice, typer.Option("--metric", help="What to watch.")],
    above: Annotated[
        str,
        typer.Option(
            "--above",
            help="Fire above this: a failure rate as 20% or 0.2, a cost in USD, a p95 in seconds.",
        ),
    ],
    window: Annotated[
        str, typer.Option("--window", help="The rolling window: 30m, 1h, 24h, 7d.")
    ] = "1h",
    agent: Annotated[str | None, typer.Option("--agent", help="Watch this agent.")] = None,
    skill: Annotated[str | None, typer.Option("--skill", help="Watch this skill.")] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", help="Watch this project (with --agent or --skill: in it)."),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Watch every agent and skill together.")
    ] = False,
    min_runs: Annotated[
        int,
        typer.Option(
            "--min-runs", min=1, help="Fewer invocations in the window tell nothing: no firing."
        ),
    ] = 1,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", help="POST each firing and resolution here (e.g. Slack)."),
    ] = None,
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add an alert rule.

    Example: claude-api alerts add --metric failure-rate --above 20% --agent code-reviewer
    --window 1h --min-runs 20 --webhook https://hooks.slack.com/services/...
    """
    if agent is not None and skill is not None:
        raise typer.BadParameter("give --agent or --skill, not both")
    if everything and (agent or skill or project):
        raise typer.BadParameter("--all watches everything: give no --agent, --skill or --project")
    if not (everything or agent or skill or project):
        raise typer.BadParameter("say what to watch: --agent, --skill, --project or --all")
    rule = {
        "metric": metric.value.upper().replace("-", "_"),
        "threshold": threshold_of(metric, above),
        "windowSeconds": window_seconds(window),
        "kind": "AGENT" if agent else "SKILL" if skill else None,
        "name": agent or skill,
        "projectId": project,
        "minSample": min_runs,
        "webhookUrl": webhook,
    }
    with open_api(url) as api:
        added = api.run(
            "AddAlertRule", rule={key: value for key, value in rule.items() if value is not None}
        )["addAlertRule"]
    if json_output:
        output.print_json(added)
    else:
        output.info(f"alert rule {added['id']}: {added['label']}")


@alerts_app.command("list")
def alerts_list(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Show every alert rule, where it stands and its measure at the last evaluation.

    Example: claude-api alerts list
    """
    with open_api(url) as api:
        rules = api.run("AlertRules")["alertRules"]
    if json_output:
        output.print_json(rules)
    elif not rules:
        output.info("no alert rules yet: claude-api alerts add --metric failure-rate ...")
    else:
        rows = [
            {**rule, "state": rule["state"].lower(), "now": shown_value(rule, rule["value"])}
            for rule in rules
        ]
        output.print_table(rows, RULE_COLUMNS, title="Alert rules")


@alerts_app.command("remove")
def alerts_remove(
    rule_id: Annotated[int, typer.Argument(metavar="ID", help="The rule's ID, as listed.")],
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove an alert rule; its history stays.

    Example: claude-api alerts remove 2
    """
    with open_api(url) as api:
        removed = api.run("RemoveAlertRule", id=rule_id)["removeAlertRule"]
    if json_output:
        output.print_json(removed)
    else:
        output.info(f"alert rule {removed['id']} ({removed['label']}) removed")


@alerts_app.command("history")
def alerts_history(
    rule_id: Annotated[int | None, typer.Option("--rule", help="Only this rule's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 50,
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show firings and resolutions, the most recent first, and their webhook deliveries.

    Example: claude-api alerts history --rule 2
    """
    with open_api(url) as api:
        events = api.run("AlertHistory", ruleId=rule_id, first=limit)["alertHistory"]
    if json_output:
        output.print_json(events)
        return
    if not events:
        output.info("no alert has fired yet")
        return
    rows = [
        {**event, "change": event["change"].lower(), "delivery": event["delivery"].lower()}
        for event in events
    ]
    output.print_table(rows, HISTORY_COLUMNS, title="Alert history")
    for event in events:
        output.print_line(f"{event['id']}: {event['message']}")
