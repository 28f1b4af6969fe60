"""Numbers on every surface of a real server on loopback, and in the `claude-api` console script
asking it: token sums past 2^31 exact in GraphQL (the `Long` scalar), REST and the CLI; a cost
nobody reported is null and shown as '-', and a partly priced sum says how many invocations it
leaves out. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport
from graphql import GraphQLError
from sqlalchemy import Engine

from claude_api.config import Settings
from claude_api.graph.scalars import LONG
from claude_api.server.app import create_app
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.cli_support import table_row
from tests.live_server import serve

CLAUDE_API = Path(sys.executable).parent / "claude-api"
BIG = 1_500_000_000  # three of them pass 2^32
RECORD = "mutation R($e: UsageEventInput!) { recordUsage(event: $e) { received } }"
RECORD_BATCH = "mutation B($es: [UsageEventInput!]!) { recordUsageBatch(events: $es) { received } }"


@dataclass
class Live:
    url: str
    services: Services
    http: httpx.Client
    graphql: Client

    def query(self, document: str, **variables: Any) -> dict[str, Any]:
        return self.graphql.execute(GraphQLRequest(document, variable_values=variables))

    def cli(self, *args: str) -> str:
        """The console script's stdout, asking this server."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_API")}
        done = subprocess.run(
            [str(CLAUDE_API), *args, "--url", self.url],
            env=env | {"COLUMNS": "100"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def live(engine: Engine) -> Iterator[Live]:
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    try:
        with serve(create_app(settings, services=services)) as url:
            transport = HTTPXTransport(url=f"{url}/graphql", timeout=30)
            with httpx.Client(base_url=url, timeout=30) as http, Client(transport=transport) as gc:
                yield Live(url, services, http, gc)  # type: ignore[arg-type]
    finally:
        tracker.close()


def graph_event(name: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "kind": "AGENT",
        "name": name,
        "taskId": "big-task",
        "status": "COMPLETED",
        "timestamp": f"2026-05-01T09:{minute:02d}:00+00:00",
        "durationSeconds": 10.0,
        **fields,
    }


def wire_event(name: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "kind": "agent",
        "name": name,
        "task_id": "big-task",
        "status": "completed",
        "timestamp": f"2026-05-01T09:{minute:02d}:00+00:00",
        "duration_seconds": 10.0,
        "source": "remote-runner",
        **fields,
    }


def test_token_sums_past_32_bits_are_exact_on_every_surface(live: Live) -> None:
    # One agent recorded through GraphQL (one event alone, two in a batch), one through REST.
    assert live.query(RECORD, e=graph_event("Explore", 0, inputTokens=BIG)) == {
        "recordUsage": {"received": 1}
    }
    batch = [graph_event("Explore", minute, inputTokens=BIG) for minute in (1, 2)]
    assert live.query(RECORD_BATCH, es=batch) == {"recordUsageBatch": {"received": 2}}
    posted = [wire_event("code-reviewer", minute, input_tokens=BIG) for minute in range(3)]
    response = live.http.post("/v1/events", json={"events": posted})
    assert response.json() == {"received": 3}
    assert live.services.tracker.flush(timeout=10)
    total = 3 * BIG

    for name in ("Explore", "code-reviewer"):
        agent = live.query(
            "query A($n: String!) { agent(name: $n) { inputTokens invocations } }", n=name
        )
        assert agent == {"agent": {"inputTokens": total, "invocations": 3}}
        # The JSON on the wire holds the exact integer, not a float's rounding of it.
        raw = live.http.post(
            "/graphql",
            json={"query": f'{{ agent(name: "{name}") {{ inputTokens totalTokens }} }}'},
        )
        assert f'"inputTokens":{total}' in raw.text.replace(" ", "")
        rest = live.http.get(f"/v1/agents/{name}/analytics").json()
        assert (rest["input_tokens"], rest["total_tokens"]) == (total, total)

        assert json.loads(live.cli("agents", "stats", name, "--json"))["inputTokens"] == total
        printed = live.cli("agents", "stats", name)
        assert table_row(printed, "input tokens")[1] == f"{total:,}"
        assert table_row(printed, "total tokens")[1] == f"{total:,}"

    usage = live.query("{ usage(kind: AGENT) { inputTokens invocations } }")["usage"]
    assert usage == {"inputTokens": 2 * total, "invocations": 6}


def test_record_usage_takes_per_event_counts_above_2_to_the_31(live: Live) -> None:
    counts = {
        "inputTokens": 3_000_000_000,
        "outputTokens": 2**31,
        "cacheReadTokens": 999_999_999_999,
        "cacheCreationTokens": 4_000_000_000,
    }
    assert live.query(RECORD, e=graph_event("general-purpose", 5, **counts)) == {
        "recordUsage": {"received": 1}
    }
    assert live.services.tracker.flush(timeout=10)
    fields = " ".join(counts)
    agent = live.query(f'{{ agent(name: "general-purpose") {{ {fields} totalTokens }} }}')
    assert agent["agent"] == counts | {"totalTokens": sum(counts.values())}
    page = live.query("{ invocations { items { " + fields + " } } }")["invocations"]
    assert page["items"] == [counts]


def test_long_refuses_what_it_cannot_hold_exactly(live: Live) -> None:
    for value in (2**53, 1.5, "12"):
        with pytest.raises(TransportQueryError, match="Long cannot represent"):
            live.query(RECORD, e=graph_event("Explore", 7, inputTokens=value))
    literal = live.http.post(
        "/graphql",
        json={
            "query": "mutation { recordUsage(event: {eventId: "
            f'"{uuid.uuid4()}", kind: AGENT, name: "Explore", taskId: "t", status: COMPLETED, '
            'timestamp: "2026-05-01T09:00:00+00:00", inputTokens: 9007199254740993}) '
            "{ received } }"
        },
    )
    assert "Long cannot represent" in literal.json()["errors"][0]["message"]


def skill_events(costs: list[float | None]) -> list[dict[str, Any]]:
    return [
        wire_event("xlsx", minute, kind="skill", cost_usd=cost, input_tokens=None)
        for minute, cost in enumerate(costs)
    ]


SKILL_COST = '{ skill(name: "xlsx") { totalCostUsd unpricedInvocations invocations } }'


def test_skills_without_a_cost_have_an_unknown_total(live: Live) -> None:
    live.http.post("/v1/events", json={"events": skill_events([None, None, None])})
    assert live.services.tracker.flush(timeout=10)

    skill = live.query(SKILL_COST)["skill"]
    assert skill == {"totalCostUsd": None, "unpricedInvocations": 3, "invocations": 3}
    rest = live.http.get("/v1/skills/xlsx/analytics").json()
    assert (rest["total_cost_usd"], rest["unpriced_invocations"]) == (None, 3)
    printed = live.cli("skills", "stats", "xlsx")
    assert table_row(printed, "total cost")[1] == "-"
    assert table_row(printed, "unpriced")[1] == "3 of 3 without a cost"
    listed = live.cli("skills", "stats")
    assert table_row(listed, "xlsx")[1:5] == ["3", "100.0%", "-", "3"]


def test_a_partly_priced_total_says_what_it_leaves_out(live: Live) -> None:
    costs = [None, 0.5, None, 0.25, None]
    live.http.post("/v1/events", json={"events": skill_events(costs)})
    assert live.services.tracker.flush(timeout=10)
    priced = sum(cost for cost in costs if cost is not None)
    unpriced = costs.count(None)

    skill = live.query(SKILL_COST)["skill"]
    assert skill == {"totalCostUsd": priced, "unpricedInvocations": unpriced, "invocations": 5}
    rest = live.http.get("/v1/skills/xlsx/analytics").json()
    assert (rest["total_cost_usd"], rest["unpriced_invocations"]) == (priced, unpriced)
    printed = live.cli("skills", "stats", "xlsx")
    assert table_row(printed, "total cost")[1] == f"${priced:.2f}"
    assert table_row(printed, "unpriced")[1] == f"{unpriced} of 5 without a cost"
    board = live.cli("skills", "leaderboard", "--by", "cost")
    assert table_row(board, "1")[1:] == ["xlsx", f"${priced:.2f}", "5", str(unpriced)]


def test_long_serializes_a_whole_decimal_and_nothing_inexact() -> None:
    """PostgreSQL sums BIGINT columns as NUMERIC: a whole one is the integer it holds."""
    serialize = LONG.serialize
    assert serialize(Decimal(4_500_000_000)) == 4_500_000_000
    assert serialize(-(2**53 - 1)) == -(2**53 - 1)
    for value in (Decimal("1.5"), True, 2**53, 0.5):
        with pytest.raises(GraphQLError, match="Long cannot represent"):
            serialize(value)
