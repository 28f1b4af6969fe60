"""Abuse limits on a real server: GraphQL depth, aliases and tokens, page sizes, request body
sizes (413) and the query time limit, each a clear error with its status or code, never a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from claude_api.errors import QueryTimeout
from claude_api.graph.limits import MAX_QUERY_ALIASES, MAX_QUERY_DEPTH, MAX_QUERY_TOKENS
from claude_api.models.db import make_engine
from claude_api.models.filters import MAX_PAGE_SIZE, MAX_TOP
from claude_api.models.timeouts import deadline_session
from claude_api.server.ingest import MAX_BATCH_EVENTS
from tests.auth_support import Secured, add_two_projects, error_codes, secured_server
from tests.test_auth import wire_event

# A query that runs for minutes unless something stops it, on SQLite and PostgreSQL alike.
ENDLESS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
    "SELECT count(*) FROM c"
)


@pytest.fixture
def open_server(engine: Engine) -> Iterator[Secured]:
    """The server as a single user runs it: loopback, no keys."""
    add_two_projects(engine)
    with secured_server(engine, auth="auto") as server:
        yield server


def stored_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM agent_usage")).scalar_one()


# ---- GraphQL documents ---------------------------------------------------------------------


def test_a_deep_query_is_refused(open_server: Secured) -> None:
    nested = "name"
    for depth in range(MAX_QUERY_DEPTH + 2):
        nested = f"f{depth} {{ {nested} }}"
    response = open_server.graphql(f"query Deep {{ {nested} }}")
    assert response.status_code == 200
    messages = [error["message"] for error in response.json()["errors"]]
    assert f"'Deep' exceeds maximum operation depth of {MAX_QUERY_DEPTH}" in messages
    assert set(error_codes(response)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "data" not in response.json()


def test_introspection_is_not_counted_as_depth(open_server: Secured) -> None:
    of_type = "name"
    for _ in range(MAX_QUERY_DEPTH):
        of_type = f"name ofType {{ {of_type} }}"
    query = f"{{ __schema {{ types {{ fields {{ type {{ {of_type} }} }} }} }} }}"
    assert open_server.data(query, None)["__schema"]["types"]


def test_too_many_aliases_are_refused_before_anything_runs(open_server: Secured) -> None:
    allowed = " ".join(f"n{i}: names" for i in range(MAX_QUERY_ALIASES))
    assert len(open_server.data(f"{{ {allowed} }}", None)) == MAX_QUERY_ALIASES
    many = " ".join(f"s{i}: agents {{ items {{ name }} }}" for i in range(MAX_QUERY_ALIASES + 1))
    response = open_server.graphql(f"{{ {many} }}")
    assert response.json()["errors"][0]["message"] == (
        f"{MAX_QUERY_ALIASES + 1} aliases found. Allowed: {MAX_QUERY_ALIASES}"
    )
    assert error_codes(response) == ["GRAPHQL_VALIDATION_FAILED"]


@pytest.mark.parametrize(
    "query", ["{}", "query {}", "{ agents {} }", "fragment F on Query {} { ...F }"]
)
def test_an_empty_selection_set_is_a_validation_error(open_server: Secured, query: str) -> None:
    response = open_server.graphql(query)
    assert response.status_code == 200
    assert error_codes(response) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "at least one field" in response.json()["errors"][0]["message"]


def test_too_many_tokens_are_refused(open_server: Secured) -> None:
    fields = " ".join(["names"] * MAX_QUERY_TOKENS)
    response = open_server.graphql(f"{{ {fields} }}")
    assert error_codes(response) == ["GRAPHQL_PARSE_FAILED"]
    assert f"more than {MAX_QUERY_TOKENS} tokens" in response.json()["errors"][0]["message"]


# ---- page sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "limit", "maximum"),
    [
        ("/v1/agents", MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE),
        ("/v1/skills", 10**9, MAX_PAGE_SIZE),
        ("/v1/tasks", MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE),
        ("/v1/agents/leaderboard", MAX_TOP + 1, MAX_TOP),
        ("/v1/skills/leaderboard", 10**40, MAX_TOP),
        ("/v1/agents", 0, MAX_PAGE_SIZE),
        ("/v1/tasks", -5, MAX_PAGE_SIZE),
    ],
)
def test_rest_page_sizes_are_capped(
    open_server: Secured, path: str, limit: int, maximum: int
) -> None:
    response = open_server.get(path, limit=str(limit))
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "limit"
    assert str(maximum) in error["message"]
    assert open_server.get(path, limit=str(maximum)).status_code == 200


@pytest.mark.parametrize(
    ("field", "argument"),
    [
        ("agents(first: $n) { items { name } }", "first"),
        ("skills(first: $n) { items { name } }", "first"),
        ("tasks(first: $n) { items { taskId } }", "first"),
        ("invocations(first: $n) { items { name } }", "first"),
        ("leaderboard(limit: $n) { name }", "limit"),
    ],
)
@pytest.mark.parametrize("size", [MAX_PAGE_SIZE + 1, 2**31 - 1, 0, -1])
def test_graphql_page_sizes_are_capped(
    open_server: Secured, field: str, argument: str, size: int
) -> None:
    response = open_server.graphql(f"query Q($n: Int!) {{ {field} }}", n=size)
    assert error_codes(response) == ["BAD_USER_INPUT"]
    error = response.json()["errors"][0]
    assert error["extensions"]["field"] == argument
    assert "must be an integer from 1 to" in error["message"]


# ---- request bodies ------------------------------------------------------------------------


def test_a_huge_graphql_body_is_refused_with_413(open_server: Secured) -> None:
    padding = " " * (2 * 1024 * 1024)
    response = open_server.post("/graphql", {"query": "{ names }" + padding})
    assert response.status_code == 413
    assert error_codes(response) == ["REQUEST_ENTITY_TOO_LARGE"]
    assert "1,048,576 bytes" in response.json()["errors"][0]["message"]


def test_a_huge_rest_body_is_refused_with_413(open_server: Secured) -> None:
    before = stored_rows(open_server.engine)
    event = wire_event(error_message="e" * 20_000)
    batch = {"events": [dict(event, event_id=f"{i:08x}-0000-4000-8000-000000000000")
                        for i in range(1000)]}  # fmt: skip
    response = open_server.post("/v1/events", batch)
    assert response.status_code == 413
    assert response.json()["message"].startswith("the request body is larger than")
    assert open_server.post("/v1/task", {"prompt": "x" * (2 * 1024 * 1024)}).status_code == 413
    assert stored_rows(open_server.engine) == before


def test_a_chunked_body_is_counted_as_it_arrives(open_server: Secured) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "{ names }", "padding": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = httpx.post(
        f"{open_server.url}/graphql",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    small = httpx.post(
        f"{open_server.url}/graphql",
        content=iter([b'{"query": ', b'"{ names }"}']),
        headers={"Content-Type": "application/json"},
    )
    assert small.status_code == 200 and small.json()["data"]["names"]


def test_a_full_batch_of_events_fits_the_ingest_limit(open_server: Secured) -> None:
    events = [wire_event(task_id=f"big-{i % 50}", model="claude-sonnet-4-5")
              for i in range(MAX_BATCH_EVENTS)]  # fmt: skip
    body = json.dumps({"events": events}).encode()
    assert len(body) > 1024 * 1024  # larger than any other route takes
    response = httpx.post(
        f"{open_server.url}/v1/events",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert response.status_code == 200, response.text[:500]
    assert response.json() == {"received": MAX_BATCH_EVENTS}


def test_the_body_limits_are_settings(engine: Engine) -> None:
    with secured_server(
        engine, auth="off", max_body_bytes=2048, max_events_body_bytes=4096
    ) as server:
        assert server.post("/graphql", {"query": "{ names }", "x": "y" * 2100}).status_code == 413
        assert server.post("/graphql", {"query": "{ names }"}).status_code == 200
        fits = server.post("/v1/events", {"events": [wire_event() for _ in range(4)]})
        assert fits.status_code == 200, fits.text
        too_many = server.post("/v1/events", {"events": [wire_event() for _ in range(20)]})
        assert too_many.status_code == 413


# ---- query time limit ----------------------------------------------------------------------


def test_the_database_stops_a_query_at_the_deadline(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        started = time.monotonic()
        with (
            pytest.raises(QueryTimeout),
            deadline_session(engine, time.monotonic() + 0.3) as session,
        ):
            session.execute(sa.text(ENDLESS)).all()
        assert time.monotonic() - started < 5
        # The connection goes back to the pool without the limit.
        with deadline_session(engine, None) as session:
            assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 2")).scalar_one() == 2
    finally:
        engine.dispose()


def test_no_statement_starts_after_the_deadline(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with deadline_session(engine, time.monotonic() + 0.2) as session:
            assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
            time.sleep(0.3)
            with pytest.raises(QueryTimeout):
                session.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()


def test_a_query_past_the_time_limit_is_a_clear_error(engine: Engine) -> None:
    add_two_projects(engine)
    with secured_server(engine, auth="off", query_timeout_seconds=1e-6) as server:
        response = server.get("/v1/agents")
        assert response.status_code == 503
        assert "time limit" in response.json()["message"]
        graphql = server.graphql("{ agents { items { name } } names }")
        assert set(error_codes(graphql)) == {"QUERY_TIMEOUT"}
        assert graphql.json()["data"] is None or graphql.json()["data"].get("names") is None
        assert server.get("/healthz").status_code == 200
