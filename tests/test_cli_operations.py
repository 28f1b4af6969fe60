"""The CLI's canned GraphQL operations: each file holds one operation named after it, and every
one validates against the committed `schema.graphql`."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import OperationDefinitionNode, build_schema, parse, validate

from claude_api.client import operations

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"
USED = {
    "StatsList", "Stats", "History", "InvocationCount", "Invocations", "Leaderboard",
    "Names", "PurgedInvocations", "Report",
    "Budgets", "BudgetStatus", "SetBudget", "RemoveBudget", "Task", "TaskList", "UsageHistory",
    "AlertRules", "AlertHistory", "AddAlertRule", "RemoveAlertRule", "Models", "Projects",
}  # fmt: skip
MUTATIONS = {"SetBudget", "RemoveBudget", "AddAlertRule", "RemoveAlertRule"}


@pytest.fixture(scope="module")
def sdl_schema():  # type: ignore[no-untyped-def]
    return build_schema(SCHEMA_FILE.read_text())


def test_every_operation_the_cli_runs_is_canned() -> None:
    assert set(operations.names()) == USED


@pytest.mark.parametrize("name", operations.names())
def test_each_operation_validates_against_schema_graphql(sdl_schema, name: str) -> None:  # type: ignore[no-untyped-def]
    document = parse(operations.load(name))
    assert validate(sdl_schema, document) == []
    defined = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = "mutation" if name in MUTATIONS else "query"
    assert [(d.operation.value, d.name.value if d.name else None) for d in defined] == [
        (operation, name)
    ]


def test_an_unknown_operation_is_a_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        operations.load("DropEverything")
