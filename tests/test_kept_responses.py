"""Kept responses: a GraphQL query or a REST GET asked again before the data changed is answered
with the bytes it was answered with; a write anywhere (another process included) makes them
unreachable; callers of different projects never share one; errors, mutations and answers that
read the clock are never kept. And the data version's cheap check on a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, create_engine
from sqlmodel import Session

from claude_api.models import data_version, queries
from claude_api.models.db import make_engine, upgrade
from claude_api.models.events import Kind
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import _cache
from claude_api.models.queries._cache import Record, mark_unkept, recording
from tests.auth_support import Secured, add_two_projects, secured_server
from tests.factories import (
    BASE_TIME,
    add_events,
    make_event,
    make_events,
    write_demo_from_another_process,
)

LEADERBOARD = "/v1/agents/leaderboard"
GRAPHQL_LEADERBOARD = "{ leaderboard(kind: AGENT) { name invocations } }"


def kept_bodies(engine: Engine) -> list[bytes]:
    """Every response body kept for `engine`'s database."""
    responses = _cache._RESPONSES.get(engine)
    return [] if responses is None else list(responses.values())


@contextmanager
def open_server(engine: Engine) -> Iterator[Secured]:
    with secured_server(engine, auth="off") as server:
        yield server


def agent_invocations(engine: Engine) -> int:
    """The agent invocations of the top ten agents, computed afresh."""
    with queries.computing_afresh(), Session(engine) as session:
        top = queries.leaderboard(session, filter=UsageFilter(kind=Kind.AGENT))
    return sum(entry.invocations for entry in top)


def invocations(response: httpx.Response) -> int:
    return sum(entry["invocations"] for entry in response.json()["items"])


def test_a_rest_answer_is_kept_and_sent_again_byte_for_byte(engine: Engine) -> None:
    add_events(engine, *make_events(3), make_event(name="debugger"))
    with open_server(engine) as server:
        first = server.get(LEADERBOARD)
        assert first.status_code == 200
        assert kept_bodies(engine) == [first.content]
        again = server.get(LEADERBOARD)
        assert again.content == first.content
        assert again.headers["content-type"] == first.headers["content-type"]
        assert kept_bodies(engine) == [first.content]  # answered from it, nothing new kept
        other = server.get(LEADERBOARD, limit=1)
        assert [entry["name"] for entry in other.json()["items"]] == ["code-reviewer"]
        assert len(kept_bodies(engine)) == 2


def test_a_graphql_answer_is_kept_and_sent_in_the_media_type_asked(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    with open_server(engine) as server:
        first = server.graphql(GRAPHQL_LEADERBOARD)
        assert first.json() == {
            "data": {"leaderboard": [{"name": "code-reviewer", "invocations": 2}]}
        }
        assert kept_bodies(engine) == [first.content]
        newer = server.post(
            "/graphql",
            {"query": GRAPHQL_LEADERBOARD, "variables": {}},
            Accept="application/graphql-response+json",
        )
        assert newer.status_code == 200
        assert newer.content == first.content
        assert newer.headers["content-type"].startswith("application/graphql-response+json")
        assert first.headers["content-type"].startswith("application/json")
        assert newer.headers["vary"] == first.headers["vary"] == "Accept"
        # Other variables are another question.
        named = "query ($n: Int!) { leaderboard(kind: AGENT, limit: $n) { name } }"
        assert server.graphql(named, n=1).json()["data"]["leaderboard"] == [
            {"name": "code-reviewer"}
        ]
        assert server.graphql(named, n=0).status_code == 200
        assert len(kept_bodies(engine)) == 2  # limit 0 is an error (not kept)


def test_a_write_in_another_process_makes_kept_responses_unreachable(
    engine: Engine, database_url: str
) -> None:
    add_events(engine, *make_events(2))
    with open_server(engine) as server:
        assert invocations(server.get(LEADERBOARD)) == 2
        before = server.data(GRAPHQL_LEADERBOARD, None)["leaderboard"]
        assert sum(entry["invocations"] for entry in before) == 2
        write_demo_from_another_process(database_url)
        expected = agent_invocations(engine)
        assert expected > 2
        assert invocations(server.get(LEADERBOARD)) == expected
        after = server.data(GRAPHQL_LEADERBOARD, None)["leaderboard"]
        assert sum(entry["invocations"] for entry in after) == expected


def test_a_write_through_the_server_is_seen_at_once(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    with open_server(engine) as server:
        assert invocations(server.get(LEADERBOARD)) == 2
        event = {
            "event_id": "6f1c2a4e-0d5b-4e8a-9c1f-3a2b4c5d6e7f",
            "kind": "agent",
            "name": "debugger",
            "task_id": "t",
            "timestamp": BASE_TIME.isoformat(),
            "status": "completed",
        }
        assert server.post("/v1/events", {"events": [event]}).status_code == 200
        assert invocations(server.get(LEADERBOARD)) == 3


def test_callers_of_different_projects_never_share_a_kept_response(engine: Engine) -> None:
    add_two_projects(engine)
    query = "{ leaderboard { name } }"
    with secured_server(engine) as server:
        everyone, web, api = (
            server.key("read"),
            server.key("read", "web"),
            server.key("read", "api"),
        )
        for _ in range(2):  # the second round is answered from kept responses
            names = {
                key: {entry["name"] for entry in server.get(LEADERBOARD, key).json()["items"]}
                for key in (everyone, web, api)
            }
            assert "api-only" in names[everyone] and "web-only" in names[everyone]
            assert "api-only" not in names[web] and "web-only" in names[web]
            assert "web-only" not in names[api] and "api-only" in names[api]
            graph = {key: server.data(query, key)["leaderboard"] for key in (everyone, web, api)}
            assert {"name": "api-only"} not in graph[web]
            assert {"name": "web-only"} not in graph[api]
        assert len(kept_bodies(engine)) == 6
        # A key that may not read is refused, as before anything was kept.
        writer = server.key("write")
        assert server.get(LEADERBOARD, writer).status_code == 403
        refused = server.graphql(query, writer).json()
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert server.get(LEADERBOARD).status_code == 401


def test_errors_mutations_and_answers_that_read_the_clock_are_not_kept(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    until = (BASE_TIME + timedelta(days=2)).isoformat()
    with open_server(engine) as server:
        assert server.graphql('{ agent(name: "nobody") { invocations } }').json()["errors"]
        assert server.graphql("{ leaderboard(limit: 0) { name } }").json()["errors"]
        assert server.graphql("{ nothing }").status_code == 200
        assert server.get(LEADERBOARD, limit=0).status_code == 400
        assert server.get("/v1/agents/nobody/analytics").status_code == 404
        mutation = """mutation ($event: UsageEventInput!) { recordUsage(event: $event) {
            received } }"""
        event = {
            "eventId": "2b0e7c1a-9f3d-4c6e-8a5b-1d2c3e4f5a6b",
            "kind": "AGENT",
            "name": "debugger",
            "taskId": "t",
            "status": "COMPLETED",
            "timestamp": BASE_TIME.isoformat(),
        }
        for _ in range(2):
            assert server.data(mutation, None, event=event) == {"recordUsage": {"received": 1}}
        history = '{ history(kind: AGENT, name: "code-reviewer") { buckets { invocations } } }'
        assert server.data(history, None)["history"]["buckets"]
        assert server.data("{ report { totals { invocations } } }", None)
        assert server.get("/v1/agents/code-reviewer/history").status_code == 200
        assert server.data("{ tasks { items { taskId } } }", None)["tasks"]["items"]
        assert server.data("{ __typename }", None) == {"__typename": "Query"}
        assert kept_bodies(engine) == []
        # With its end given, a history reads no clock: it is kept.
        pinned = server.get("/v1/agents/code-reviewer/history", until=until)
        assert pinned.status_code == 200
        assert kept_bodies(engine) == [pinned.content]


def test_a_record_names_one_version_only_when_every_answer_was_kept() -> None:
    assert Record().version is None  # no answer at all
    assert Record(versions={7}).version == 7
    assert Record(versions={7, 8}).version is None
    assert Record(versions={7}, all_kept=False).version is None
    with recording() as record:
        mark_unkept()
    assert not record.all_kept
    mark_unkept()  # outside a recording: nothing to mark, no error


# ---- the data version's cheap check --------------------------------------------------------


def test_the_latest_version_follows_writes_here_and_elsewhere(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    try:
        assert data_version.watch(engine)
        initial = data_version.latest(engine)
        add_events(engine, make_event())
        first = data_version.latest(engine)
        assert first not in (None, initial)
        assert data_version.latest(engine) == first
        write_demo_from_another_process(sqlite_url)
        second = data_version.latest(engine)
        assert second not in (None, first)
        add_events(engine, make_event())
        assert data_version.latest(engine) not in (first, second)
        with engine.connect() as connection:
            assert data_version.latest(engine) == data_version.current(connection)
    finally:
        data_version.unwatch(engine)
        engine.dispose()
    with pytest.raises(data_version.Unknown):
        data_version.latest(engine)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "postgresql"])
def test_only_a_sqlite_file_is_watched(url: str, request: pytest.FixtureRequest) -> None:
    if url == "postgresql":
        url = request.getfixturevalue("postgresql_url")
    engine = create_engine(url)
    try:
        assert not data_version.watch(engine)
        with pytest.raises(data_version.Unknown):
            data_version.latest(engine)
    finally:
        engine.dispose()
