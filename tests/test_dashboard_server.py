"""The dashboard's routes on a real server: public pages and assets that hold no data, the data
version route (read scope, ETag and 304), and the pages' GraphQL documents valid against the
schema."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate
from sqlalchemy import Engine

from claude_api.dashboard.documents import documents
from claude_api.server.dashboard import VERSION_PATH
from tests.auth_support import Secured, bearer, secured_server
from tests.factories import add_events, make_event

SCHEMA = Path(__file__).resolve().parents[1] / "schema.graphql"
PAGES = ["/", "/tasks", "/agents/code-reviewer", "/skills/a%2Fb", "/tasks/task-1"]


@pytest.fixture
def secured(engine: Engine) -> Iterator[Secured]:
    add_events(engine, make_event())
    with secured_server(engine) as server:
        yield server


def test_pages_and_assets_need_no_key(secured: Secured) -> None:
    for path in PAGES:
        response = secured.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    page = secured.get("/").text
    assets = re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page)
    assert len(assets) == 4
    for asset in assets:
        assert secured.get(asset).status_code == 200, asset


def test_a_post_to_a_page_path_needs_a_key(secured: Secured) -> None:
    assert secured.post("/", {}).status_code == 401


def test_the_data_version_needs_a_read_key(secured: Secured) -> None:
    assert secured.get(VERSION_PATH).status_code == 401
    write_only = secured.key("write")
    assert secured.get(VERSION_PATH, write_only).status_code == 403
    assert secured.get(VERSION_PATH, secured.key("read")).status_code == 200


def test_the_data_version_answers_304_until_the_data_changes(secured: Secured) -> None:
    key = secured.key("read")
    first = secured.get(VERSION_PATH, key)
    etag = first.headers["etag"]
    assert first.json()["version"] == etag.strip('"')
    assert first.headers["cache-control"] == "no-cache"
    unchanged = _get(secured, key, etag)
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    assert _get(secured, key, f'W/{etag}, "other"').status_code == 304

    event = {
        "event_id": str(uuid.uuid4()),
        "kind": "agent",
        "name": "planner",
        "task_id": "task-9",
        "timestamp": "2026-05-01T10:00:00+00:00",
        "status": "completed",
        "source": "test",
    }
    assert secured.post("/v1/events", {"events": [event]}, secured.key("write")).status_code < 300
    changed = _get(secured, key, etag)
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["version"] == changed.headers["etag"].strip('"')


def _get(secured: Secured, key: str, if_none_match: str):  # type: ignore[no-untyped-def]
    import httpx

    headers = {**bearer(key), "If-None-Match": if_none_match}
    return httpx.get(f"{secured.url}{VERSION_PATH}", headers=headers, timeout=30)


def test_the_pages_graphql_documents_are_valid_against_the_schema() -> None:
    schema = build_schema(SCHEMA.read_text())
    found = documents()
    assert {"OVERVIEW", "TRENDS", "USAGE", "TASKS", "TASK", "GUARDRAILS"} <= found.keys()
    for name, document in found.items():
        errors = validate(schema, parse(document))
        assert not errors, (name, errors)
