"""What `claude-api analytics report` says of guardrails: the budgets that cover its agents,
skills and project (spent ones first) and the alerts open on them, as they stand now."""

from __future__ import annotations

from typing import Any

from claude_api.client import output
from claude_api.client.alerts import shown_value
from claude_api.client.budgets import print_statuses


def print_guardrails(budgets: list[dict[str, Any]], alerts: list[dict[str, Any]], tz: str) -> None:
    """The budgets (`BudgetStatus` answers) as a table, each spent one said in words, and a
    line per open alert (`AlertRule` answers): its rule, its measure now and since when it
    fires, in the report's time zone `tz`. Nothing at all when there are neither."""
    if budgets:
        print_statuses(budgets, title="Budgets now")
    if alerts:
        output.print_line()
        output.print_heading("Open alerts")
        for rule in alerts:
            since = output.moment(rule["changedAt"], tz)
            output.print_line(
                f"{rule['label']}: {shown_value(rule, rule['value'])} now, firing since {since}"
            )
