"""GraphQL object types that resolve the query layer's results as they are, and the top errors a
stats field counts only when they are asked for, however the query asks for them."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import cached_property
from typing import Any

import pytest
from sqlalchemy import Engine
from strawberry.types.base import get_object_definition

from claude_api.client.transport import LocalContext
from claude_api.events import Kind, Status
from claude_api.graph import types
from claude_api.graph.schema import build_schema
from tests.factories import BASE_TIME, add_events, make_event

READING_TYPES = [
    value
    for value in vars(types).values()
    if isinstance(value, type) and "__result_type__" in vars(value)
]


def test_the_types_that_read_results_are_found() -> None:
    names = {cls.__name__ for cls in READING_TYPES}
    assert {"UsageStats", "HistoryBucket", "History", "TaskSummary", "ErrorCount"} <= names


@pytest.mark.parametrize("graph_type", READING_TYPES, ids=lambda cls: cls.__name__)
def test_every_field_of_a_type_is_a_field_of_the_result_it_reads(graph_type: type) -> None:
    """Every field it reads by name, that is: a field with a resolver computes its value."""
    definition = get_object_definition(graph_type, strict=True)
    result = graph_type.__result_type__  # type: ignore[attr-defined]
    held = {field.name for field in dataclasses.fields(result)} | {
        name for name, value in vars(result).items() if isinstance(value, cached_property)
    }
    read = [field.python_name for field in definition.fields if field.base_resolver is None]
    missing = [name for name in read if name not in held]
    assert missing == [], f"{result.__name__} has no {missing}"


@pytest.fixture
def context(engine: Engine) -> Iterator[LocalContext]:
    since = BASE_TIME.replace(hour=0)
    events = [
        make_event(
            event_id=uuid.uuid4(),
            kind=Kind.AGENT if number % 3 else Kind.SKILL,
            name=("planner", "reviewer", "pdf")[number % 3],
            timestamp=since + timedelta(minutes=7 * number),
            status=Status.FAILED if number % 4 == 0 else Status.COMPLETED,
            error_message=f"error {number % 5}" if number % 4 == 0 else None,
        )
        for number in range(60)
    ]
    add_events(engine, *events)
    local = LocalContext(engine)
    yield local
    local.close()


def ask(context: LocalContext, document: str) -> dict[str, Any]:
    result = asyncio.run(build_schema().execute(document, context_value=context))
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data


ERRORS = "topErrors { kind name errorMessage count }"


@pytest.mark.parametrize(
    "document",
    [
        "{ agents { items { name ...Errors } } }"
        f" fragment Errors on UsageStats {{ {ERRORS} }}",
        f"{{ agents {{ items {{ name ... on UsageStats {{ {ERRORS} }} }} }} }}",
        "{ agents { ...Items } }"
        f" fragment Items on UsageStatsPage {{ items {{ name {ERRORS} }} }}",
        "{ agents { items { name topErrors @include(if: true)"
        " { kind name errorMessage count } } } }",
    ],
    ids=["fragment", "inline fragment", "fragment of the page", "directive"],
)
def test_top_errors_asked_in_any_form_are_counted(context: LocalContext, document: str) -> None:
    plain = ask(context, f"{{ agents {{ items {{ name {ERRORS} }} }} }}")["agents"]["items"]
    assert any(item["topErrors"] for item in plain)
    assert ask(context, document)["agents"]["items"] == plain


def test_top_errors_of_one_name_under_an_alias_are_counted(context: LocalContext) -> None:
    data = ask(
        context,
        '{ agent(name: "reviewer") { failed errors: topErrors { errorMessage count } } '
        "usage { ...on UsageStats { topErrors { count } } } }",
    )
    assert sum(error["count"] for error in data["agent"]["errors"]) == data["agent"]["failed"]
    assert data["usage"]["topErrors"]


def test_totals_without_top_errors_are_the_same(context: LocalContext) -> None:
    fields = "name invocations failed p95DurationSeconds"
    without = ask(context, f"{{ skills {{ items {{ {fields} }} }} }}")["skills"]["items"]
    both = ask(context, f"{{ skills {{ items {{ {fields} {ERRORS} }} }} }}")["skills"]["items"]
    assert without == [{key: item[key] for key in without[0]} for item in both]
    assert without[0]["failed"] > 0


def test_top_errors_asked_in_a_second_selection_of_the_same_field_are_counted(
    context: LocalContext,
) -> None:
    # Both selections have the response key `agent`: GraphQL merges them into one field.
    merged = ask(
        context,
        '{ agent(name: "reviewer") { failed } agent(name: "reviewer") { topErrors { count } } }',
    )["agent"]
    assert sum(error["count"] for error in merged["topErrors"]) == merged["failed"] > 0
