"""`POST /v1/events`: one event or a batch, validated whole, stored before the answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from claude_api.config import Settings
from claude_api.server.ingest import MAX_BATCH_EVENTS, post_events
from claude_api.server.services import Services
from claude_api.tracking import Tracker


@pytest.fixture
def client(engine: Engine, tracker: Tracker) -> Iterator[TestClient]:
    app = Starlette(routes=[Route("/v1/events", post_events, methods=["POST"])])
    app.state.services = Services(settings=Settings(), engine=engine, tracker=tracker)
    with TestClient(app) as client:
        yield client


def wire_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "kind": "agent",
        "name": "code-reviewer",
        "task_id": "task-9",
        "timestamp": "2026-05-01T10:00:00+02:00",
        "status": "completed",
        "duration_seconds": 4.5,
        "cost_usd": 0.02,
        "source": "remote-runner",
    }
    event.update(overrides)
    return event


def stored(engine: Engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT agent_name, status, cost_usd, source FROM agent_usage ORDER BY id")
        ).all()


def test_one_event_is_stored_before_the_answer(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/events", json=wire_event())
    assert response.status_code == 200
    assert response.json() == {"received": 1}
    assert stored(engine) == [("code-reviewer", "completed", 0.02, "remote-runner")]


def test_a_batch_with_start_and_finish(client: TestClient, engine: Engine) -> None:
    event_id = str(uuid.uuid4())
    batch = [
        wire_event(event_id=event_id, status="running", duration_seconds=None, cost_usd=None),
        wire_event(event_id=event_id, status="failed", error_message="boom"),
        wire_event(kind="skill", name="lint-fix", parent_id=event_id),
    ]
    response = client.post("/v1/events", json={"events": batch})
    assert response.json() == {"received": 3}
    assert stored(engine) == [("code-reviewer", "failed", 0.02, "remote-runner")]
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM skill_usage")).scalar_one() == 1


def test_a_bad_batch_is_rejected_whole_with_every_problem(
    client: TestClient, engine: Engine
) -> None:
    batch = [
        wire_event(),
        wire_event(cost_usd=-1),
        wire_event(kind="tool", timestamp="2026-05-01T10:00:00"),
    ]
    response = client.post("/v1/events", json={"events": batch})
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"events[1].cost_usd", "events[2].kind", "events[2].timestamp"}
    assert "nothing was stored" in response.json()["message"]
    assert stored(engine) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 422),
        (b'{"events": 3}', 422),
        (b'"text"', 422),
    ],
)
def test_malformed_bodies(client: TestClient, engine: Engine, body: bytes, status: int) -> None:
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["message"]
    assert stored(engine) == []


def test_too_large_a_batch(client: TestClient) -> None:
    batch = [wire_event()] * (MAX_BATCH_EVENTS + 1)
    response = client.post("/v1/events", json={"events": batch})
    assert response.status_code == 422
    assert "at most" in response.json()["message"]


def test_a_store_failure_is_a_503_and_stores_nothing(client: TestClient, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE skill_usage"))
    batch = [wire_event(), wire_event(kind="skill", name="lint-fix")]
    response = client.post("/v1/events", json={"events": batch})
    assert response.status_code == 503
    assert "could not store" in response.json()["message"]
    assert stored(engine) == []
