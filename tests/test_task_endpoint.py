"""`POST /v1/task`: runs a task through the executor and answers with its outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from claude_api.config import Settings
from claude_api.server.services import Services
from claude_api.server.tasks import post_task
from claude_api.tracking import Tracker
from tests.fake_claude import FakeClaude
from tests.fake_claude.scenarios import error_max_turns, success


@pytest.fixture
def fake(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


def client_for(engine: Engine, tracker: Tracker, claude_bin: Path) -> TestClient:
    app = Starlette(routes=[Route("/v1/task", post_task, methods=["POST"])])
    settings = Settings(claude_bin=str(claude_bin))
    app.state.services = Services(settings=settings, engine=engine, tracker=tracker)
    return TestClient(app)


@pytest.fixture
def client(engine: Engine, tracker: Tracker, fake: FakeClaude) -> Iterator[TestClient]:
    with client_for(engine, tracker, fake.install(success())) as client:
        yield client


def test_a_task_runs_and_is_recorded(
    client: TestClient, engine: Engine, tracker: Tracker, fake: FakeClaude
) -> None:
    response = client.post(
        "/v1/task", json={"prompt": "Review src/", "agent": "planner", "task_id": "t-42"}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["task_id"], body["status"], body["agent"]) == ("t-42", "completed", "planner")
    assert fake.calls()[0]["agent"] == "planner"
    assert tracker.flush(timeout=10)
    with engine.connect() as connection:
        names = connection.execute(
            sa.text("SELECT agent_name FROM agent_usage WHERE task_id = 't-42'")
        ).scalars()
        assert set(names) == {"planner", "code-reviewer", "Explore"}


def test_a_failed_task_is_a_200_that_says_so(
    engine: Engine, tracker: Tracker, fake: FakeClaude
) -> None:
    with client_for(engine, tracker, fake.install(error_max_turns())) as client:
        body = client.post("/v1/task", json={"prompt": "Loop"}).json()
    assert body["status"] == "failed"
    assert "maximum number of turns" in body["error"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "timeout": -1}, "timeout"),
        ({"prompt": "x", "allow_tools": ["Bash"]}, "allow_tools"),
    ],
)
def test_bad_requests_name_the_field(
    client: TestClient, fake: FakeClaude, payload: dict, field: str
) -> None:
    response = client.post("/v1/task", json=payload)
    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}
    assert fake.calls() == []


def test_a_body_that_is_not_json(client: TestClient) -> None:
    response = client.post("/v1/task", content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 400
