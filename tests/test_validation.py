"""Every rule of the usage event, proven over HTTP (`POST /v1/events`) and GraphQL
(`recordUsageBatch`) on a real server: a bad event rejects its whole batch, every problem is
listed by field, and the database is unchanged."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from claude_api.events import MAX_ERROR_LENGTH, MAX_NAME_LENGTH
from tests.auth_support import Secured, error_codes, secured_server
from tests.test_auth import wire_event

BATCH = """
mutation Batch($events: [UsageEventInput!]!) { recordUsageBatch(events: $events) { received } }
"""
NOW = datetime.now(UTC)
EVENT_ID = "0f4de16e-330b-4c61-b74c-f4730b2a49ea"

# (overrides of a valid wire event, the field named in the problem, words of its message)
RULES: list[tuple[dict[str, Any], str, str]] = [
    ({"kind": "tool"}, "kind", "agent"),
    ({"kind": "Agent"}, "kind", "agent"),
    ({"status": "done"}, "status", "running"),
    ({"status": "COMPLETED"}, "status", "running"),
    ({"event_id": "not-a-uuid"}, "event_id", "UUID"),
    ({"event_id": 12345}, "event_id", "UUID"),
    ({"parent_id": "nope"}, "parent_id", "UUID"),
    ({"timestamp": "2026-05-01T10:00:00"}, "timestamp", "timezone"),
    ({"timestamp": (NOW + timedelta(days=30)).isoformat()}, "timestamp", "future"),
    ({"timestamp": "1999-12-31T23:59:59+00:00"}, "timestamp", "before 2000"),
    ({"timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp", "range"),
    ({"timestamp": "9999-12-31T23:59:59-14:00"}, "timestamp", "range"),
    ({"timestamp": 1777000000}, "timestamp", "ISO 8601"),
    ({"timestamp": "yesterday"}, "timestamp", "datetime"),
    ({"finished_at": (NOW + timedelta(days=3)).isoformat()}, "finished_at", "future"),
    ({"duration_seconds": -1}, "duration_seconds", "greater than or equal to 0"),
    ({"duration_seconds": 1e300}, "duration_seconds", "less than or equal"),
    ({"duration_seconds": 1e9, "finished_at": None}, "", "future"),  # a finish far ahead
    ({"duration_seconds": True}, "duration_seconds", "number"),
    ({"cost_usd": -0.01}, "cost_usd", "greater than or equal to 0"),
    ({"cost_usd": 1e12}, "cost_usd", "less than or equal"),
    ({"cost_usd": "0.5"}, "cost_usd", "number"),
    ({"input_tokens": -1}, "input_tokens", "greater than or equal to 0"),
    ({"output_tokens": 1.5}, "output_tokens", "integer"),
    ({"cache_read_tokens": 10**13}, "cache_read_tokens", "less than or equal"),
    ({"cache_creation_tokens": "12"}, "cache_creation_tokens", "number"),
    ({"input_tokens": False}, "input_tokens", "number"),
    ({"name": ""}, "name", "at least 1"),
    ({"name": "n" * (MAX_NAME_LENGTH + 1)}, "name", f"at most {MAX_NAME_LENGTH}"),
    ({"name": "a\x00b"}, "name", "NUL"),
    ({"task_id": "t" * (MAX_NAME_LENGTH + 1)}, "task_id", f"at most {MAX_NAME_LENGTH}"),
    ({"project_id": "p\x00"}, "project_id", "NUL"),
    ({"model": "m" * (MAX_NAME_LENGTH + 1)}, "model", f"at most {MAX_NAME_LENGTH}"),
    ({"source": "s" * 65}, "source", "at most 64"),
    ({"error_message": "e" * (MAX_ERROR_LENGTH + 1)}, "error_message", "at most 20000"),
    ({"status": "running", "finished_at": NOW.isoformat()}, "", "running invocation"),
    ({"finished_at": "2026-04-30T00:00:00+00:00"}, "", "before timestamp"),
    ({"parent_id": EVENT_ID, "event_id": EVENT_ID}, "", "own event_id"),
    ({"unknown_field": 1}, "unknown_field", "Extra inputs"),
]


@pytest.fixture
def server(engine: Engine) -> Iterator[Secured]:
    with secured_server(engine, auth="off") as live:
        yield live


def stored(engine: Engine) -> int:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT count(*) FROM agent_usage")).scalar_one()
        return rows + connection.execute(sa.text("SELECT count(*) FROM skill_usage")).scalar_one()


def camel_case(name: str) -> str:
    return re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)


def to_graphql(event: dict[str, Any]) -> dict[str, Any]:
    """A wire event as a `UsageEventInput` variable: camelCase keys, enum values by name."""
    converted = {}
    for key, value in event.items():
        if value is None:
            continue
        if key in ("kind", "status") and isinstance(value, str) and value.islower():
            value = value.upper()
        converted[camel_case(key)] = value
    return converted


# Test ids: deterministic (xdist workers must agree), the rule's place and field.
RULE_IDS = [f"{index}-{field or 'event'}" for index, (_, field, _) in enumerate(RULES)]
# GraphQL spells enum values by name: COMPLETED is right there.
GRAPHQL_RULES = [
    (rule, rule_id) for rule, rule_id in zip(RULES, RULE_IDS, strict=True)
    if rule[0] != {"status": "COMPLETED"}
]  # fmt: skip


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_each_rule_over_http(server: Secured, rule: tuple[dict[str, Any], str, str]) -> None:
    overrides, field, words = rule
    batch = [wire_event(), {**wire_event(), **overrides}]
    response = server.post("/v1/events", {"events": batch})
    assert response.status_code == 422, response.text
    body = response.json()
    wanted = f"events[1].{field}" if field else "events[1]"
    problems = [e for e in body["errors"] if e["field"] == wanted]
    assert problems, body
    assert any(words.lower() in e["message"].lower() for e in problems), body
    assert "nothing was stored" in body["message"]
    assert stored(server.engine) == 0


@pytest.mark.parametrize(
    "rule", [rule for rule, _ in GRAPHQL_RULES], ids=[rule_id for _, rule_id in GRAPHQL_RULES]
)
def test_each_rule_over_graphql(server: Secured, rule: tuple[dict[str, Any], str, str]) -> None:
    overrides, field, words = rule
    events = [to_graphql(wire_event()), to_graphql({**wire_event(), **overrides})]
    response = server.graphql(BATCH, events=events)
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    problems = error["extensions"].get("problems")
    if problems is None:
        # Refused by the input types (a type, an enum value, an unknown field) at the
        # variable's path, `[1].durationSeconds`, before the resolver runs.
        assert error["message"].startswith("Variable '$events' has invalid value at [1]")
        assert camel_case(field) in error["message"], error
    else:
        wanted = f"events[1].{field}" if field else "events[1]"
        assert any(p["field"] == wanted and words.lower() in p["message"].lower()
                   for p in problems), problems  # fmt: skip
    assert stored(server.engine) == 0


def test_every_problem_of_a_batch_is_listed_at_once(server: Secured) -> None:
    bad = [{**wire_event(), **overrides} for overrides, _, _ in RULES]
    response = server.post("/v1/events", {"events": [wire_event(), *bad]})
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {f"events[{index + 1}]" for index in range(len(bad))} <= {
        field.split(".")[0] for field in fields
    }
    assert stored(server.engine) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": [{"duration_seconds": 1e999}]}',
        b'{"cost_usd": -1e999}',
        b'{"cost_usd": NaN}',
        b'{"cost_usd": Infinity}',
        b'{"name": "\\ud800"}',
    ],
    ids=["1e999", "-1e999", "NaN", "Infinity", "lone surrogate"],
)
def test_non_finite_numbers_and_bad_text_never_reach_the_database(
    server: Secured, body: bytes
) -> None:
    response = httpx.post(
        f"{server.url}/v1/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
    assert stored(server.engine) == 0


LITERAL = (
    'mutation {{ recordUsage(event: {{eventId: "{event_id}", kind: AGENT, name: "a", '
    'taskId: "t", status: COMPLETED, timestamp: "2026-05-01T10:00:00+00:00", '
    "durationSeconds: {value}}}) {{ received }} }}"
)
VARIABLE = (
    b'{"query": "mutation M($e: UsageEventInput!) { recordUsage(event: $e) { received } }", '
    b'"variables": {"e": {"eventId": "0f4de16e-330b-4c61-b74c-f4730b2a49ea", "kind": "AGENT", '
    b'"name": "a", "taskId": "t", "status": "COMPLETED", '
    b'"timestamp": "2026-05-01T10:00:00+00:00", "costUsd": VALUE}}}'
)


@pytest.mark.parametrize("value", ["1e999", "-1e999"])
def test_non_finite_literals_over_graphql(server: Secured, value: str) -> None:
    query = LITERAL.format(event_id=uuid.uuid4(), value=value)
    response = server.graphql(query)
    assert error_codes(response) == ["BAD_USER_INPUT"], response.text
    problems = response.json()["errors"][0]["extensions"]["problems"]
    assert problems[0]["field"] == "event[0].duration_seconds"
    assert stored(server.engine) == 0


@pytest.mark.parametrize("value", [b"Infinity", b"-Infinity", b"NaN", b"1e999"])
def test_non_finite_variables_over_graphql(server: Secured, value: bytes) -> None:
    # Python's JSON reader takes these (JSON itself has no such numbers); the Float type
    # refuses them before the resolver runs.
    response = httpx.post(
        f"{server.url}/graphql",
        content=VARIABLE.replace(b"VALUE", value),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert error_codes(response) == ["BAD_USER_INPUT"], response.text
    assert "Float cannot represent non numeric value" in response.json()["errors"][0]["message"]
    assert stored(server.engine) == 0


def test_the_limits_themselves_are_accepted(server: Secured, engine: Engine) -> None:
    edge = wire_event(
        name="n" * MAX_NAME_LENGTH,
        error_message="e" * MAX_ERROR_LENGTH,
        status="failed",
        timestamp=datetime(2000, 1, 1, tzinfo=UTC),
        input_tokens=10**12,
    )
    assert server.post("/v1/events", edge).json() == {"received": 1}
    # A NUL in free text (tool output) is kept as U+FFFD rather than losing the event.
    noisy = wire_event(status="failed", error_message="bad\x00byte")
    assert server.post("/v1/events", noisy).json() == {"received": 1}
    with engine.connect() as connection:
        messages = set(
            connection.execute(sa.text("SELECT error_message FROM agent_usage")).scalars()
        )
    assert "bad\N{REPLACEMENT CHARACTER}byte" in messages
