"""What the auth, isolation and limits tests share: a real server on loopback with API keys
required, keys made through the real key module, and invocations of two projects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.applications import Starlette

from claude_api.config import Settings
from claude_api.models.db import write_engine
from claude_api.models.keys import create_key
from claude_api.server.app import create_app
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.factories import BASE_TIME, add_events, make_event
from tests.live_server import serve


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@dataclass
class Secured:
    """A live server: `url`, its database and helpers to make keys and send requests."""

    url: str
    engine: Engine
    services: Services
    app: Starlette

    def key(self, scope: str, project: str | None = None, name: str | None = None) -> str:
        """A new API key, made as `claude-api keys create` makes it: in a transaction that
        takes SQLite's write lock as it begins, so the server's own writes (an alert evaluated,
        a key's last use) make it wait rather than fail with "database is locked"."""
        with Session(write_engine(self.engine)) as session:
            key, _ = create_key(session, scope=scope, project_id=project, name=name)
            session.commit()
        return key

    def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=bearer(key), timeout=30)

    def post(self, path: str, body: Any, key: str | None = None, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}", json=body, headers={**bearer(key), **headers}, timeout=30
        )

    def graphql(self, query: str, key: str | None = None, **variables: Any) -> httpx.Response:
        return self.post("/graphql", {"query": query, "variables": variables}, key)

    def data(self, query: str, key: str | None, **variables: Any) -> dict[str, Any]:
        """The `data` of a GraphQL query that must succeed."""
        response = self.graphql(query, key, **variables)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def settings_for(engine: Engine, **overrides: Any) -> Settings:
    return Settings(database_url=database_url(engine), **overrides)


@contextmanager
def secured_server(engine: Engine, **overrides: Any) -> Iterator[Secured]:
    """A server on loopback with `auth=required` (unless `overrides` say otherwise), its keys
    trusted for no time by default so a revocation is seen at once."""
    settings = settings_for(engine, **{"auth": "required", "auth_cache_seconds": 0, **overrides})
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    try:
        app = create_app(settings, services=services)
        with serve(app) as url:
            yield Secured(url, engine, services, app)
    finally:
        tracker.close()


def error_codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


def add_two_projects(engine: Engine) -> None:
    """Invocations of projects `web` and `api` (and one without a project), with names, tasks
    and errors that exist in one project only, and a task id and an agent name in both."""
    shared_parent = uuid.uuid4()
    add_events(
        engine,
        make_event(project_id="web", task_id="web-1", cost_usd=0.5),
        make_event(project_id="web", kind="skill", name="lint-fix", task_id="web-1", cost_usd=0.1),
        make_event(
            project_id="web",
            name="web-only",
            task_id="web-2",
            status="failed",
            error_message="web failure",
            timestamp=BASE_TIME + timedelta(hours=1),
        ),
        make_event(project_id="web", task_id="shared-task", event_id=shared_parent),
        make_event(project_id="api", task_id="api-1", cost_usd=2.0),
        make_event(
            project_id="api",
            name="api-only",
            task_id="api-1",
            status="failed",
            error_message="api secret failure",
            timestamp=BASE_TIME + timedelta(hours=2),
        ),
        make_event(project_id="api", name="api-only", task_id="shared-task", cost_usd=3.0),
        make_event(project_id=None, name="orphan", task_id="orphan-1"),
    )


WEB_NAMES = {"code-reviewer", "web-only", "lint-fix"}
WEB_TASKS = {"web-1", "web-2", "shared-task"}
