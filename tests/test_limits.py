"""Abuse limits on a real server: GraphQL depth, aliases and tokens, page sizes, request body
sizes (413), the query time limit and request rates (429), each a clear error with its status or
code, never a 500."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event

from claude_api.config import Rate, Settings
from claude_api.errors import QueryTimeout
from claude_api.graph.limits import MAX_QUERY_ALIASES, MAX_QUERY_DEPTH, MAX_QUERY_TOKENS
from claude_api.models.db import make_engine
from claude_api.models.filters import MAX_PAGE_SIZE, MAX_TOP
from claude_api.models.timeouts import deadline_session
from claude_api.server.ingest import MAX_BATCH_EVENTS
from claude_api.server.rate_limits import TokenBuckets
from tests.auth_support import Secured, add_two_projects, bearer, error_codes, secured_server
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


# ---- request rates -------------------------------------------------------------------------


def client_from(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 reaches loopback).
    Not 127.0.0.1, where the test server's readiness probe came from."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def retry_after(response: httpx.Response) -> int:
    return int(response.headers["retry-after"])


def one_token_back(rate: Rate) -> int:
    """Seconds until an empty bucket of `rate` holds a token again, as Retry-After says it."""
    return math.ceil(rate.seconds / rate.count)


@contextmanager
def counted_statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine's connections run while the block runs."""
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_without_keys_each_client_address_has_its_rate(engine: Engine) -> None:
    rate = Rate(5, 60)
    add_two_projects(engine)
    before = stored_rows(engine)
    with secured_server(engine, auth="auto", rate_limit=str(rate)) as server:
        with client_from("127.0.0.2") as client:
            answers = [client.get(f"{server.url}/v1/agents") for _ in range(rate.count)]
            assert [answer.status_code for answer in answers] == [200] * rate.count
            with counted_statements(engine) as statements:
                refused = client.get(f"{server.url}/v1/agents")
                graphql = client.post(f"{server.url}/graphql", json={"query": "{ names }"})
                events = client.post(f"{server.url}/v1/events", json=wire_event())
                health = client.get(f"{server.url}/healthz")
            assert statements == []  # refused before any database work
        assert refused.status_code == 429, refused.text
        assert 1 <= retry_after(refused) <= one_token_back(rate)
        message = refused.json()["message"]
        assert "client address" in message and "5/minute" in message
        assert "CLAUDE_API_RATE_LIMIT" in message
        assert graphql.status_code == 429
        assert error_codes(graphql) == ["TOO_MANY_REQUESTS"]
        assert 1 <= retry_after(graphql) <= one_token_back(rate)
        assert (events.status_code, health.status_code) == (429, 429)
        assert stored_rows(engine) == before
        # Another address has its own buckets.
        with client_from("127.0.0.3") as other:
            assert other.get(f"{server.url}/v1/agents").status_code == 200


def test_each_api_key_has_its_rate(engine: Engine) -> None:
    rate = Rate(3, 60)
    with secured_server(engine, rate_limit=str(rate), auth_cache_seconds=10) as server:
        first, second = server.key("read"), server.key("read")
        with client_from("127.0.0.2") as client:

            def ask(key: str) -> httpx.Response:
                return client.get(f"{server.url}/v1/agents", headers=bearer(key))

            assert [ask(first).status_code for _ in range(rate.count)] == [200] * rate.count
            refused = ask(first)
            assert refused.status_code == 429, refused.text
            assert "API key" in refused.json()["message"]
            assert 1 <= retry_after(refused) <= one_token_back(rate)
            # The other key, from the same address, has its own buckets.
            assert ask(second).status_code == 200


def test_invented_keys_count_against_the_client_address(engine: Engine) -> None:
    """Each unknown key costs a database lookup: counted per key alone, a caller inventing a
    new key per request would never be limited."""
    rate = Rate(4, 60)
    with secured_server(engine, rate_limit=str(rate)) as server:
        invented = [f"cc_{number:012x}_{'a' * 43}" for number in range(rate.count + 1)]
        with client_from("127.0.0.2") as client:
            statuses = []
            for key in invented:
                response = client.get(f"{server.url}/v1/agents", headers=bearer(key))
                statuses.append(response.status_code)
        assert statuses == [401] * rate.count + [429]
        assert "client address" in response.json()["message"]
        valid = server.key("read")
        with client_from("127.0.0.3") as elsewhere:
            answer = elsewhere.get(f"{server.url}/v1/agents", headers=bearer(valid))
            assert answer.status_code == 200


def test_rate_limits_are_a_setting_and_can_be_turned_off(engine: Engine) -> None:
    assert Settings().rate_limit == (Rate(300, 1), Rate(6000, 60))
    with secured_server(engine, auth="auto", rate_limit="1/hour") as server:
        with client_from("127.0.0.2") as client:
            statuses = [client.get(f"{server.url}/healthz").status_code for _ in range(2)]
        assert statuses == [200, 429]
    with secured_server(engine, auth="auto", rate_limit="off") as server:
        assert {server.get("/healthz").status_code for _ in range(30)} == {200}
    with pytest.raises(ValueError, match="CLAUDE_API_RATE_LIMIT: '5/fortnight'"):
        Settings(rate_limit="100/second;5/fortnight")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_token_buckets_refill_at_their_rates() -> None:
    per_second, per_minute = Rate(2, 1), Rate(3, 60)
    clock = Clock()
    buckets = TokenBuckets([per_second, per_minute], clock=clock)
    assert buckets.take("a") == buckets.take("a") == (0.0, None)
    # The per-second bucket is empty: one token comes back in 1/2 s.
    assert buckets.take("a") == (pytest.approx(per_second.seconds / per_second.count), "a")
    clock.now += 0.5
    assert buckets.take("a") == (0.0, None)  # the third token of the per-minute bucket
    # The per-minute bucket is empty since 0.5 s ago, when it had 0.025 tokens.
    refilled = 0.5 * per_minute.count / per_minute.seconds
    assert buckets.take("a") == (
        pytest.approx((1 - refilled) * per_minute.seconds / per_minute.count),
        "a",
    )
    assert buckets.take("b") == (0.0, None)  # every caller has its own buckets
    wait, _ = buckets.take("a")
    clock.now += wait
    assert buckets.take("a") == (0.0, None)  # after waiting as long as it said


def test_token_buckets_take_from_every_caller_or_none() -> None:
    rate = Rate(1, 10)
    clock = Clock()
    buckets = TokenBuckets([rate], clock=clock)
    assert buckets.take("address") == (0.0, None)
    assert buckets.take("key", "address") == (pytest.approx(10.0), "address")
    assert buckets.take("key") == (0.0, None)  # the refused request took nothing from it


def test_token_buckets_forget_the_callers_seen_least_recently() -> None:
    clock = Clock()
    buckets = TokenBuckets([Rate(1, 60)], clock=clock, max_callers=2)
    for caller in ("a", "b", "a", "c"):  # "b" is the least recent when "c" comes
        buckets.take(caller)
    assert buckets.take("a")[1] == "a"  # still remembered: empty
    assert buckets.take("b") == (0.0, None)  # forgotten: full again


@pytest.mark.parametrize(
    "query",
    ["{ agents { ...Missing } }", "{ ...Missing }", "fragment F on Query { ...Missing } { ...F }"],
)
def test_a_spread_of_an_unknown_fragment_is_named(open_server: Secured, query: str) -> None:
    response = open_server.graphql(query)
    assert response.status_code == 200
    assert error_codes(response) == ["GRAPHQL_VALIDATION_FAILED"]
    assert response.json()["errors"][0]["message"] == "Unknown fragment 'Missing'."
