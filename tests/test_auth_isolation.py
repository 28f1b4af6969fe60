"""Project isolation: a key bound to a project sees and records that project only, on GraphQL,
REST, ingest, tasks and the CLI's export, and naming another project is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from typer.testing import CliRunner

from claude_api.client.app import app as cli_app
from claude_api.events import UsageEvent
from tests.auth_support import (
    WEB_NAMES,
    WEB_TASKS,
    Secured,
    add_two_projects,
    error_codes,
    secured_server,
)
from tests.factories import BASE_TIME, add_events, make_event
from tests.test_auth import graphql_event, wire_event

EVERYTHING = """
query Everything {
  agents { items { name invocations totalCostUsd topErrors { errorMessage } } }
  skills { items { name } }
  leaderboard(limit: 100) { name }
  report(period: MONTH, date: "2026-05-01") {
    agents { name } skills { name } topFailures { name errorMessage }
    totals { invocations totalCostUsd }
  }
  tasks { items { taskId totalCostUsd } }
  invocations(first: 100) { items { name projectId taskId } }
  invocationCount
  names
}
"""


@pytest.fixture
def secured(engine: Engine) -> Iterator[Secured]:
    add_two_projects(engine)
    with secured_server(engine) as server:
        yield server


@pytest.fixture
def web(secured: Secured) -> str:
    """A read key bound to project `web`."""
    return secured.key("read", project="web")


def test_graphql_answers_only_from_the_keys_project(secured: Secured, web: str) -> None:
    data = secured.data(EVERYTHING, web)
    assert {item["name"] for item in data["agents"]["items"]} == {"code-reviewer", "web-only"}
    reviewer = next(i for i in data["agents"]["items"] if i["name"] == "code-reviewer")
    assert reviewer["invocations"] == 2 and reviewer["totalCostUsd"] == pytest.approx(0.75)
    assert {item["name"] for item in data["skills"]["items"]} == {"lint-fix"}
    assert {entry["name"] for entry in data["leaderboard"]} == WEB_NAMES
    report = data["report"]
    assert {row["name"] for row in report["agents"] + report["skills"]} == WEB_NAMES
    assert [f["errorMessage"] for f in report["topFailures"]] == ["web failure"]
    assert report["totals"]["invocations"] == 4
    assert {task["taskId"] for task in data["tasks"]["items"]} == WEB_TASKS
    invocations = data["invocations"]["items"]
    assert {item["projectId"] for item in invocations} == {"web"} and len(invocations) == 4
    assert data["invocationCount"] == 4
    assert set(data["names"]) == WEB_NAMES
    assert "api secret failure" not in json.dumps(data)


def test_graphql_hides_other_projects_tasks_and_names(secured: Secured, web: str) -> None:
    task = secured.graphql('{ task(id: "api-1") { id invocations { name } } }', web)
    assert error_codes(task) == ["NOT_FOUND"] and task.json()["data"] == {"task": None}
    shared = secured.data('{ task(id: "shared-task") { invocations { name projectId } } }', web)
    assert shared["task"]["invocations"] == [{"name": "code-reviewer", "projectId": "web"}]
    # A name recorded in another project only is unknown, not "quiet": nothing leaks.
    other = secured.graphql('{ agent(name: "api-only") { invocations } }', web)
    assert error_codes(other) == ["NOT_FOUND"]
    assert "api-only" in other.json()["errors"][0]["message"]
    assert "project 'web'" in other.json()["errors"][0]["message"]
    history = secured.graphql('{ history(kind: AGENT, name: "api-only") { name } }', web)
    assert error_codes(history) == ["NOT_FOUND"]


def test_graphql_refuses_naming_another_project(secured: Secured, web: str) -> None:
    for field in (
        'agents(filter: {projectId: "api"}) { items { name } }',
        'agent(name: "code-reviewer", filter: {projectId: "api"}) { invocations }',
        'leaderboard(filter: {projectId: "api"}) { name }',
        'report(filter: {projectId: "api"}) { tz }',
        'tasks(filter: {projectId: "api"}) { items { taskId } }',
        'invocations(filter: {projectId: "api"}) { items { name } }',
        'invocationCount(filter: {projectId: "api"})',
    ):
        response = secured.graphql(f"{{ {field} }}", web)
        assert error_codes(response) == ["FORBIDDEN"], field
        error = response.json()["errors"][0]
        assert error["extensions"]["field"] == "project_id"
        assert "bound to project 'web'" in error["message"]
    own = secured.data('{ agents(filter: {projectId: "web"}) { items { name } } }', web)
    assert {item["name"] for item in own["agents"]["items"]} == {"code-reviewer", "web-only"}


def test_a_key_for_every_project_sees_everything(secured: Secured) -> None:
    data = secured.data(EVERYTHING, secured.key("read"))
    assert data["invocationCount"] == 8
    assert {"api-only", "orphan"} <= set(data["names"])


def rest(secured: Secured, path: str, key: str, status: int = 200, **params: Any) -> Any:
    response = secured.get(path, key, **params)
    assert response.status_code == status, (path, response.text)
    return response.json()


def test_rest_answers_only_from_the_keys_project(secured: Secured, web: str) -> None:
    agents = rest(secured, "/v1/agents", web)
    assert {item["name"] for item in agents["items"]} == {"code-reviewer", "web-only"}
    stats = rest(secured, "/v1/agents/code-reviewer/analytics", web)
    assert stats["invocations"] == 2 and stats["total_cost_usd"] == pytest.approx(0.75)
    board = rest(secured, "/v1/agents/leaderboard", web, by="cost")
    assert {entry["name"] for entry in board["items"]} <= WEB_NAMES
    history = rest(
        secured, "/v1/agents/code-reviewer/history", web, since="2026-04-30", until="2026-05-02"
    )
    assert sum(bucket["invocations"] for bucket in history["buckets"]) == 2
    report = rest(secured, "/v1/analytics/report", web, period="month", date="2026-05-01")
    assert {row["name"] for row in report["agents"] + report["skills"]} == WEB_NAMES
    tasks = rest(secured, "/v1/tasks", web)
    assert {task["task_id"] for task in tasks["items"]} == WEB_TASKS
    shared = rest(secured, "/v1/tasks/shared-task", web)
    assert [(i["name"], i["project_id"]) for i in shared["invocations"]] == [
        ("code-reviewer", "web")
    ]
    rest(secured, "/v1/tasks/api-1", web, status=404)
    missing = rest(secured, "/v1/agents/api-onlx/analytics", web, status=404)
    assert missing["suggestions"] == []  # api-only is close, but of another project
    assert "api" not in json.dumps([agents, board, report, tasks, shared]).replace("api-1", "")


def test_rest_refuses_naming_another_project(secured: Secured, web: str) -> None:
    for path in ("/v1/agents", "/v1/agents/code-reviewer/analytics", "/v1/tasks"):
        body = rest(secured, path, web, status=403, project="api")
        assert body["errors"] == [{"field": "project", "message": body["message"]}]
    report = rest(secured, "/v1/analytics/report", web, status=403, project="api")
    assert report["errors"][0]["field"] == "project"
    assert rest(secured, "/v1/agents", web, project="web")["items"]


# ---- writes --------------------------------------------------------------------------------


def projects_of(engine: Engine, task_id: str) -> list[str | None]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text("SELECT project_id FROM agent_usage WHERE task_id = :t ORDER BY id"),
                {"t": task_id},
            ).scalars()
        )


def test_ingest_records_the_keys_project_only(secured: Secured) -> None:
    key = secured.key("write", project="web")
    batch = [wire_event(task_id="w", project_id="web"), wire_event(task_id="w", project_id=None)]
    assert secured.post("/v1/events", {"events": batch}, key).json() == {"received": 2}
    assert projects_of(secured.engine, "w") == ["web", "web"]  # no project: the key's

    mixed = [
        wire_event(task_id="x", project_id="web"),
        wire_event(task_id="x", project_id="api"),
        wire_event(task_id="x"),
        wire_event(task_id="x", project_id="other"),
    ]
    refused = secured.post("/v1/events", {"events": mixed}, key)
    assert refused.status_code == 403
    body = refused.json()
    assert [error["field"] for error in body["errors"]] == [
        "events[1].project_id",
        "events[3].project_id",
    ]
    assert "nothing was stored" in body["message"]
    single = secured.post("/v1/events", wire_event(task_id="x", project_id="api"), key)
    assert single.status_code == 403 and single.json()["errors"][0]["field"] == "project_id"
    assert projects_of(secured.engine, "x") == []


def test_graphql_mutations_record_the_keys_project_only(secured: Secured) -> None:
    key = secured.key("write", project="web")
    one = "mutation R($e: UsageEventInput!) { recordUsage(event: $e) { received } }"
    batch = "mutation B($es: [UsageEventInput!]!) { recordUsageBatch(events: $es) { received } }"
    assert secured.data(one, key, e=graphql_event(task_id="g"))["recordUsage"]["received"] == 1
    refused = secured.graphql(one, key, e=graphql_event(task_id="h", project_id="api"))
    assert error_codes(refused) == ["FORBIDDEN"]
    assert refused.json()["errors"][0]["extensions"]["problems"][0]["field"] == (
        "event[0].project_id"
    )
    events = [graphql_event(task_id="h"), graphql_event(task_id="h", project_id="api")]
    refused_batch = secured.graphql(batch, key, es=events)
    assert error_codes(refused_batch) == ["FORBIDDEN"]
    assert projects_of(secured.engine, "g") == ["web"]
    assert projects_of(secured.engine, "h") == []


def test_tasks_run_in_the_keys_project_only(secured: Secured) -> None:
    key = secured.key("admin", project="web")
    refused = secured.post("/v1/task", {"prompt": "hi", "project_id": "api"}, key)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "project_id"


def test_the_cli_export_holds_the_keys_project_only(secured: Secured, tmp_path: Path) -> None:
    target = tmp_path / "web.jsonl"
    env = {
        "CLAUDE_API_URL": secured.url,
        "CLAUDE_API_KEY": secured.key("read", project="web"),
        "CLAUDE_API_DATABASE_URL": "sqlite:////nonexistent/never-used.db",
    }
    result = CliRunner().invoke(cli_app, ["analytics", "export", "-o", str(target)], env=env)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 4 and {row["project_id"] for row in rows} == {"web"}
    refused = CliRunner().invoke(
        cli_app,
        ["analytics", "export", "-o", str(tmp_path / "api.csv"), "--project", "api"],
        env=env,
    )
    assert refused.exit_code == 1 and "bound to project 'web'" in refused.stderr
    assert not (tmp_path / "api.csv").exists()
    # The same key's agents table, from the canned operations.
    stats = CliRunner().invoke(cli_app, ["agents", "stats", "--json"], env=env)
    assert {row["name"] for row in json.loads(stats.stdout)} == {"code-reviewer", "web-only"}
    assert BASE_TIME.year == 2026  # the report above asked about May 2026


# ---- another project's invocations cannot be taken over ----------------------------------------

VICTIM_PROJECT = "victim-project"
ONE = "mutation R($e: UsageEventInput!) { recordUsage(event: $e) { received } }"
BATCH = "mutation B($es: [UsageEventInput!]!) { recordUsageBatch(events: $es) { received } }"


@pytest.fixture
def victim(engine: Engine) -> UsageEvent:
    """A running invocation of another project, as its own runner recorded it."""
    start = make_event(
        status="running", project_id=VICTIM_PROJECT, task_id="victim-task", name="planner"
    )
    add_events(engine, start)
    return start


def usage_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for table in ("agent_usage", "skill_usage")
            for row in connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
        ]


def takeover(victim: UsageEvent) -> dict[str, Any]:
    """A finish with the victim's id, name and task but no project: the key's is filled in."""
    return wire_event(
        event_id=victim.event_id,
        name=victim.name,
        task_id=victim.task_id,
        status="failed",
        cost_usd=500.0,
        error_message="taken over",
        project_id=None,
    )


def assert_nothing_leaks(text: str) -> None:
    """The answer tells nothing of the other invocation's values."""
    assert VICTIM_PROJECT not in text and "victim-task" not in text and "planner" not in text


def test_ingest_cannot_take_over_another_projects_invocation(
    engine: Engine, victim: UsageEvent
) -> None:
    before = usage_rows(engine)
    with secured_server(engine) as secured:
        key = secured.key("write", project="web")
        batch = [wire_event(task_id="innocent"), takeover(victim)]
        refused = secured.post("/v1/events", {"events": batch}, key)
        single = secured.post("/v1/events", takeover(victim), key)
        as_skill = secured.post(
            "/v1/events", {**takeover(victim), "kind": "skill", "project_id": "web"}, key
        )
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert [error["field"] for error in body["errors"]] == ["events[1].event_id"]
    assert str(victim.event_id) in body["errors"][0]["message"]
    assert "project_id" in body["errors"][0]["message"]
    assert "nothing was stored" in body["message"]
    assert_nothing_leaks(refused.text)
    assert single.status_code == 409 and single.json()["errors"][0]["field"] == "event_id"
    assert as_skill.status_code == 409 and "kind" in as_skill.json()["errors"][0]["message"]
    assert usage_rows(engine) == before  # the victim unchanged, the innocent event not stored


def test_graphql_cannot_take_over_another_projects_invocation(
    engine: Engine, victim: UsageEvent
) -> None:
    before = usage_rows(engine)
    hostile = {
        **graphql_event(event_id=victim.event_id, name=victim.name, task_id=victim.task_id),
        "status": "FAILED",
        "costUsd": 500.0,
        "errorMessage": "taken over",
    }
    with secured_server(engine) as secured:
        key = secured.key("write", project="web")
        one = secured.graphql(ONE, key, e=hostile)
        batch = secured.graphql(BATCH, key, es=[graphql_event(task_id="innocent"), hostile])
    assert error_codes(one) == ["CONFLICT"] and one.json()["data"] is None
    [problem] = one.json()["errors"][0]["extensions"]["problems"]
    assert problem["field"] == "event[0].event_id" and "project_id" in problem["message"]
    assert error_codes(batch) == ["CONFLICT"]
    fields = [p["field"] for p in batch.json()["errors"][0]["extensions"]["problems"]]
    assert fields == ["events[1].event_id"]
    assert_nothing_leaks(one.text + batch.text)
    assert usage_rows(engine) == before


def test_the_owner_still_finishes_its_invocation(engine: Engine, victim: UsageEvent) -> None:
    with secured_server(engine) as secured:
        key = secured.key("write", project=VICTIM_PROJECT)
        finish = wire_event(
            event_id=victim.event_id, name=victim.name, task_id=victim.task_id, cost_usd=0.5
        )
        assert secured.post("/v1/events", finish, key).status_code == 200
        assert secured.post("/v1/events", finish, key).status_code == 200  # a replay
    with engine.connect() as connection:
        status, cost, project = connection.execute(
            sa.text("SELECT status, cost_usd, project_id FROM agent_usage WHERE task_id = :t"),
            {"t": victim.task_id},
        ).one()
    assert (status, cost, project) == ("completed", 0.5, VICTIM_PROJECT)
