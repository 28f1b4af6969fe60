"""The whole server on loopback: events recorded through the executor (`POST /v1/task`) and
`POST /v1/events` give the same numbers from GraphQL (through gql), REST and the query layer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXTransport
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.events import Kind
from claude_api.models import queries
from claude_api.models.db import head_revision
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.server.app import create_app
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.fake_claude import FakeClaude
from tests.fake_claude.scenarios import success
from tests.live_server import serve


@dataclass
class Live:
    url: str
    engine: Engine
    services: Services
    http: httpx.Client
    graphql: Client

    def query(self, document: str, **variables: Any) -> dict[str, Any]:
        return self.graphql.execute(GraphQLRequest(document, variable_values=variables))


@pytest.fixture
def live(engine: Engine, tmp_path: Path) -> Iterator[Live]:
    fake = FakeClaude(tmp_path / "fake-claude")
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        claude_bin=str(fake.install(success())),
    )
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    with serve(create_app(settings, services=services)) as url:
        transport = HTTPXTransport(url=f"{url}/graphql", timeout=30)
        with httpx.Client(base_url=url, timeout=30) as http, Client(transport=transport) as gc:
            yield Live(url, engine, services, http, gc)  # type: ignore[arg-type]
    tracker.close()


def wire_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": str(uuid.uuid4()),
        "kind": "agent",
        "name": "code-reviewer",
        "task_id": "remote-1",
        "project_id": "web",
        "timestamp": "2026-05-01T09:00:00+00:00",
        "status": "completed",
        "duration_seconds": 30.0,
        "cost_usd": 0.5,
        "input_tokens": 100,
        "output_tokens": 50,
        "source": "remote-runner",
    }
    event.update(overrides)
    return event


def record_everything(live: Live) -> str:
    """Run one task through the executor and post a batch; returns the task's id."""
    response = live.http.post("/v1/task", json={"prompt": "Review src/", "project_id": "web"})
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "completed"
    batch = [
        wire_event(),
        wire_event(status="failed", error_message="lint crashed", cost_usd=0.25),
        wire_event(name="planner", task_id="remote-2", duration_seconds=90.0),
        wire_event(kind="skill", name="lint-fix", task_id="remote-1", cost_usd=None),
    ]
    assert live.http.post("/v1/events", json={"events": batch}).json() == {"received": 4}
    assert live.services.tracker.flush(timeout=10)
    return task["task_id"]


STATS = """
query Stats($name: String!) {
  agent(name: $name) {
    name kind invocations completed failed successRate totalCostUsd avgDurationSeconds
    p50DurationSeconds p95DurationSeconds inputTokens outputTokens
    topErrors { errorMessage count }
  }
}
"""


def test_the_same_numbers_from_every_surface(live: Live) -> None:
    task_id = record_everything(live)
    with Session(live.engine) as session:
        stats = queries.usage_stats(
            session, filter=UsageFilter(kind=Kind.AGENT, name="code-reviewer")
        )
        board = queries.leaderboard(session, filter=UsageFilter(kind=Kind.AGENT), limit=10)
        usage = queries.list_task_usage(session, task_id=task_id)
        report = queries.usage_report(session, period=Period.MONTH, on=stats.first_seen_at)

    # The executor's run and the posted batch both count.
    assert stats.invocations == 3 and stats.failed == 1
    assert {u.name for u in usage} >= {"main", "code-reviewer", "Explore", "lint-fix"}

    agent = live.query(STATS, name="code-reviewer")["agent"]
    assert agent["invocations"] == stats.invocations
    assert agent["failed"] == stats.failed
    assert agent["successRate"] == pytest.approx(stats.success_rate)
    assert agent["totalCostUsd"] == pytest.approx(stats.total_cost_usd)
    assert agent["p95DurationSeconds"] == pytest.approx(stats.p95_duration_seconds)
    assert agent["inputTokens"] == stats.input_tokens
    assert agent["topErrors"] == [{"errorMessage": "lint crashed", "count": 1}]

    entries = live.query(
        "query { leaderboard(kind: AGENT, by: USAGE) { rank name value invocations } }"
    )["leaderboard"]
    assert [(e["rank"], e["name"], e["invocations"]) for e in entries] == [
        (entry.rank, entry.name, entry.invocations) for entry in board
    ]

    task = live.query(
        "query T($id: String!) { task(id: $id) { invocations { name kind status parentId } } }",
        id=task_id,
    )["task"]
    assert [i["name"] for i in task["invocations"]] == [u.name for u in usage]

    month = report.period_start.isoformat()
    graph_report = live.query(
        "query R($d: Date!) { report(period: MONTH, date: $d) { totals { invocations } } }",
        d=month,
    )["report"]
    assert graph_report["totals"]["invocations"] == report.totals.invocations

    rest = live.http.get("/v1/agents/code-reviewer/analytics").json()
    assert rest["invocations"] == stats.invocations
    assert rest["total_cost_usd"] == pytest.approx(stats.total_cost_usd)
    assert rest["p50_duration_seconds"] == pytest.approx(stats.p50_duration_seconds)

    rest_board = live.http.get("/v1/agents/leaderboard", params={"by": "usage"}).json()
    rest_items = rest_board["items"] if isinstance(rest_board, dict) else rest_board
    assert [e["name"] for e in rest_items] == [e.name for e in board]


def test_unknown_agent_is_null_in_graphql_and_404_in_rest(live: Live) -> None:
    record_everything(live)
    response = live.http.post(
        "/graphql", json={"query": '{ agent(name: "code-reviwer") { name } }'}
    )
    body = response.json()
    assert body["data"] == {"agent": None}
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "code-reviwer" in body["errors"][0]["message"]
    assert live.http.get("/v1/agents/code-reviwer/analytics").status_code == 404


def test_record_usage_mutation_goes_through_the_recorder(live: Live) -> None:
    event_id = str(uuid.uuid4())
    mutation = """
    mutation M($e: UsageEventInput!) { recordUsage(event: $e) { received } }
    """
    event = {
        "eventId": event_id,
        "kind": "SKILL",
        "name": "deploy",
        "taskId": "t-9",
        "status": "COMPLETED",
        "timestamp": "2026-05-02T08:00:00+00:00",
        "durationSeconds": 3.0,
    }
    assert live.query(mutation, e=event) == {"recordUsage": {"received": 1}}
    stats = live.query('{ skill(name: "deploy") { invocations completed } }')["skill"]
    assert stats == {"invocations": 1, "completed": 1}

    bad = dict(event, eventId=str(uuid.uuid4()), durationSeconds=-1)
    batch = "mutation B($es: [UsageEventInput!]!) { recordUsageBatch(events: $es) { received } }"
    response = live.http.post(
        "/graphql",
        json={"query": batch, "variables": {"es": [dict(event, eventId=str(uuid.uuid4())), bad]}},
    ).json()
    error = response["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [p["field"] for p in error["extensions"]["problems"]] == ["events[1].duration_seconds"]
    stats = live.query('{ skill(name: "deploy") { invocations } }')["skill"]
    assert stats == {"invocations": 1}  # the rejected batch stored nothing


def test_bad_input_names_the_field(live: Live) -> None:
    response = live.http.post(
        "/graphql",
        json={"query": "{ leaderboard(limit: -1) { name } }"},
    ).json()
    assert response["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "limit"}
    response = live.http.post(
        "/graphql", json={"query": '{ report(filter: {tz: "Mars/Olympus"}) { tz } }'}
    ).json()
    assert response["errors"][0]["extensions"]["field"] == "tz"


def test_health_reports_the_schema_version(live: Live) -> None:
    response = live.http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["schema_version"] == head_revision()
    assert body["database"] == live.engine.dialect.name


def test_leaderboard_metrics_agree(live: Live) -> None:
    record_everything(live)
    for metric in LeaderboardMetric:
        with Session(live.engine) as session:
            expected = queries.leaderboard(session, metric=metric, limit=20)
        got = live.query(
            "query L($by: LeaderboardMetric!) { leaderboard(by: $by, limit: 20) { name value } }",
            by=metric.name,
        )["leaderboard"]
        assert [(g["name"], pytest.approx(g["value"])) for g in got] == [
            (e.name, e.value) for e in expected
        ]


def test_openapi_document_is_valid_and_describes_every_route(live: Live) -> None:
    from openapi_spec_validator import validate

    document = live.http.get("/openapi.json").json()
    validate(document)
    assert {"/v1/events", "/v1/task", "/healthz", "/v1/agents/{name}/analytics"} <= set(
        document["paths"]
    )


def test_unknown_routes_and_methods_answer_json(live: Live) -> None:
    missing = live.http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["message"]
    wrong_method = live.http.delete("/v1/events")
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]
    assert wrong_method.json()["message"]
