"""`POST /v1/task` on a real server: runs a task through the executor and answers with its
outcome; input it cannot run with, or a task id it may not run under, is refused before anything
runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from claude_api.models.tables import TaskSession
from tests.auth_support import Secured, bearer, secured_server
from tests.factories import add_events, make_event
from tests.fake_claude import FakeClaude
from tests.fake_claude.scenarios import error_max_turns, success


@pytest.fixture
def fake(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


@pytest.fixture
def secured(engine: Engine, fake: FakeClaude) -> Iterator[Secured]:
    with secured_server(engine, claude_bin=str(fake.install(success()))) as server:
        yield server


def stored(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql))]


def registered(engine: Engine) -> list[tuple]:
    table = TaskSession.__table__
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(table.c.session_id))]


def test_a_task_runs_and_is_recorded(secured: Secured, fake: FakeClaude) -> None:
    task_id = str(uuid.uuid4())
    body = {"prompt": "Review src/", "agent": "planner", "task_id": task_id}
    response = secured.post("/v1/task", body, secured.key("admin"))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["task_id"], answer["status"], answer["agent"]) == (
        task_id,
        "completed",
        "planner",
    )
    assert answer["session_id"] == task_id
    (call,) = fake.calls()
    assert (call["agent"], call["session_id"]) == ("planner", task_id)
    assert secured.services.tracker.flush(timeout=10)
    names = stored(
        secured.engine, f"SELECT agent_name FROM agent_usage WHERE task_id = '{task_id}'"
    )
    assert {name for (name,) in names} == {"planner", "code-reviewer", "Explore"}
    assert registered(secured.engine) == [(task_id,)]


def test_a_failed_task_is_a_200_that_says_so(engine: Engine, fake: FakeClaude) -> None:
    with secured_server(engine, claude_bin=str(fake.install(error_max_turns()))) as secured:
        body = secured.post("/v1/task", {"prompt": "Loop"}, secured.key("admin")).json()
    assert body["status"] == "failed"
    assert "maximum number of turns" in body["error"]


TASK_ID = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "timeout": -1}, "timeout"),
        ({"prompt": "x", "allow_tools": ["Bash"]}, "allow_tools"),
        ({"prompt": "x", "task_id": "task-42"}, "task_id"),
        # NUL in every text field: Claude Code's argv cannot hold one, nor PostgreSQL's text.
        ({"prompt": "Fix\x00lint"}, "prompt"),
        ({"prompt": "x", "agent": "code\x00reviewer"}, "agent"),
        ({"prompt": "x", "project_id": "web\x00"}, "project_id"),
        ({"prompt": "x", "task_id": f"{TASK_ID}\x00"}, "task_id"),
        ({"prompt": "x", "task_id": "\x00"}, "task_id"),
    ],
)
def test_bad_requests_name_the_field_and_run_nothing(
    secured: Secured, fake: FakeClaude, payload: dict, field: str
) -> None:
    response = secured.post("/v1/task", payload, secured.key("admin"))

    assert response.status_code == 422, response.text
    assert field in {error["field"] for error in response.json()["errors"]}
    assert fake.calls() == []
    assert stored(secured.engine, "SELECT task_id FROM agent_usage") == []
    assert registered(secured.engine) == []


def test_a_task_id_must_be_a_uuid_and_the_answer_says_why(secured: Secured) -> None:
    response = secured.post("/v1/task", {"prompt": "x", "task_id": "t-42"}, secured.key("admin"))
    (error,) = response.json()["errors"]
    assert "is not a UUID" in error["message"]
    assert "--session-id" in error["message"]


def test_a_body_that_is_not_json(secured: Secured, fake: FakeClaude) -> None:
    headers = {**bearer(secured.key("admin")), "Content-Type": "application/json"}
    response = httpx.post(f"{secured.url}/v1/task", content=b"{", headers=headers, timeout=30)
    assert response.status_code == 400
    assert fake.calls() == []


def test_a_task_id_that_has_run_is_a_409(secured: Secured, fake: FakeClaude) -> None:
    key = secured.key("admin")
    first = secured.post("/v1/task", {"prompt": "Review"}, key).json()
    again = secured.post("/v1/task", {"prompt": "Review", "task_id": first["task_id"]}, key)

    assert again.status_code == 409, again.text
    assert again.json()["errors"][0]["field"] == "task_id"
    assert "has already run" in again.json()["message"]
    assert len(fake.calls()) == 1


def test_a_project_bound_key_may_not_run_under_another_projects_task_id(
    secured: Secured, fake: FakeClaude
) -> None:
    """A task id that belongs to project api (a session imported there): a key bound to web
    may not run a task under it, which would add web's rows to api's task."""
    # Keys first: a key made while the tracker writes could meet SQLite's lock.
    web_admin, admin, api_admin = (
        secured.key("admin", project="web"),
        secured.key("admin"),
        secured.key("admin", project="api"),
    )
    theirs = str(uuid.uuid4())
    add_events(secured.engine, make_event(task_id=theirs, project_id="api", cost_usd=2.0))

    refused = secured.post("/v1/task", {"prompt": "Review", "task_id": theirs}, web_admin)

    assert refused.status_code == 403, refused.text
    assert refused.json()["errors"][0]["field"] == "task_id"
    assert "belongs to another project" in refused.json()["message"]
    assert fake.calls() == []
    rows = stored(
        secured.engine, f"SELECT project_id, cost_usd FROM agent_usage WHERE task_id = '{theirs}'"
    )
    assert rows == [("api", 2.0)]
    assert registered(secured.engine) == []
    # Unbound, the same id is merely taken; bound to api, it is api's own task: both 409.
    for key in (admin, api_admin):
        taken = secured.post("/v1/task", {"prompt": "Review", "task_id": theirs}, key)
        assert taken.status_code == 409, taken.text
    assert fake.calls() == []


def test_a_task_id_registered_by_another_project_is_refused(
    secured: Secured, fake: FakeClaude
) -> None:
    """A task run with a key of project api: web may not run under its id."""
    api_admin, web_admin = secured.key("admin", project="api"), secured.key("admin", project="web")
    task_id = secured.post("/v1/task", {"prompt": "Review"}, api_admin).json()["task_id"]
    refused = secured.post("/v1/task", {"prompt": "Review", "task_id": task_id}, web_admin)
    assert refused.status_code == 403, refused.text
    assert len(fake.calls()) == 1
