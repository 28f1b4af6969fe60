"""Caching at the HTTP edge, through a real server: an answer of GraphQL or REST made of cached
answers carries an ETag; asked again with it in If-None-Match before the data changed, it is
answered 304; right after a write (through the server or from another process) it has a new
ETag; callers of different projects never share one; what reads the clock, errors and
mutations never get one. A PostgreSQL answer reads one snapshot. And the data version's cheap
check on a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session

from claude_api.events import Kind
from claude_api.models import data_version, queries
from claude_api.models.db import make_engine, upgrade
from claude_api.models.filters import UsageFilter
from claude_api.models.gateway import Gateway, computing_afresh
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
NEW_EVENT = {
    "event_id": "6f1c2a4e-0d5b-4e8a-9c1f-3a2b4c5d6e7f",
    "kind": "agent",
    "name": "debugger",
    "task_id": "t",
    "timestamp": BASE_TIME.isoformat(),
    "status": "completed",
}


@contextmanager
def open_server(engine: Engine) -> Iterator[Secured]:
    with secured_server(engine, auth="off") as server:
        yield server


def revalidate(
    server: Secured, path: str, etag: str, key: str | None = None, **params: str
) -> httpx.Response:
    headers = {"If-None-Match": etag}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=30)


def revalidate_graphql(
    server: Secured, query: str, etag: str, key: str | None = None, **headers: str
) -> httpx.Response:
    extra = {"If-None-Match": etag, **headers}
    return server.post("/graphql", {"query": query, "variables": {}}, key, **extra)


def invocations(response: httpx.Response) -> int:
    return sum(entry["invocations"] for entry in response.json()["items"])


def test_an_unchanged_rest_answer_is_answered_304(engine: Engine) -> None:
    add_events(engine, *make_events(3), make_event(name="debugger"))
    with open_server(engine) as server:
        first = server.get(LEADERBOARD)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag.startswith('"') and first.headers["cache-control"] == "private, no-cache"
        again = server.get(LEADERBOARD)  # no If-None-Match: the whole answer, the same tag
        assert again.content == first.content and again.headers["etag"] == etag
        assert again.headers["content-type"] == first.headers["content-type"]
        unchanged = revalidate(server, LEADERBOARD, etag)
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["etag"] == etag
        # Weak comparison, and a list of tags.
        assert revalidate(server, LEADERBOARD, f'"x", W/{etag}').status_code == 304
        other = server.get(LEADERBOARD, limit=1)
        assert [entry["name"] for entry in other.json()["items"]] == ["code-reviewer"]
        assert other.headers["etag"] != etag
        assert revalidate(server, LEADERBOARD, etag, limit="1").status_code == 200


def test_an_unchanged_graphql_answer_is_answered_304_per_media_type(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    with open_server(engine) as server:
        first = server.graphql(GRAPHQL_LEADERBOARD)
        assert first.json() == {
            "data": {"leaderboard": [{"name": "code-reviewer", "invocations": 2}]}
        }
        etag = first.headers["etag"]
        unchanged = revalidate_graphql(server, GRAPHQL_LEADERBOARD, etag)
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["vary"] == "Accept"
        newer_type = "application/graphql-response+json"
        newer = revalidate_graphql(server, GRAPHQL_LEADERBOARD, etag, Accept=newer_type)
        assert newer.status_code == 200  # another representation, another tag
        assert newer.content == first.content
        assert newer.headers["content-type"].startswith(newer_type)
        assert newer.headers["etag"] != etag
        again = server.post("/graphql", {"query": GRAPHQL_LEADERBOARD}, Accept=newer_type)
        assert again.headers["content-type"].startswith(newer_type)
        assert again.headers["vary"] == "Accept" and again.content == first.content
        # Other variables are another question; GET requests are tagged too.
        named = "query ($n: Int!) { leaderboard(kind: AGENT, limit: $n) { name } }"
        one = server.graphql(named, n=1)
        assert one.json()["data"]["leaderboard"] == [{"name": "code-reviewer"}]
        assert one.headers["etag"] not in (etag, server.graphql(named, n=2).headers["etag"])
        by_get = server.get("/graphql", query=GRAPHQL_LEADERBOARD)
        assert by_get.json() == first.json()
        assert revalidate(server, "/graphql", by_get.headers["etag"], query=GRAPHQL_LEADERBOARD)


def test_a_write_through_the_server_gives_a_new_etag_at_once(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    with open_server(engine) as server:
        rest = server.get(LEADERBOARD)
        graph = server.graphql(GRAPHQL_LEADERBOARD)
        assert invocations(rest) == 2
        assert server.post("/v1/events", {"events": [NEW_EVENT]}).status_code == 200
        after = revalidate(server, LEADERBOARD, rest.headers["etag"])
        assert after.status_code == 200 and invocations(after) == 3
        assert after.headers["etag"] != rest.headers["etag"]
        graph_after = revalidate_graphql(server, GRAPHQL_LEADERBOARD, graph.headers["etag"])
        assert graph_after.status_code == 200
        assert graph_after.json()["data"]["leaderboard"][0]["invocations"] == 2
        assert {e["name"] for e in graph_after.json()["data"]["leaderboard"]} == {
            "code-reviewer",
            "debugger",
        }
        assert revalidate(server, LEADERBOARD, after.headers["etag"]).status_code == 304


def test_a_write_in_another_process_gives_a_new_etag(engine: Engine, database_url: str) -> None:
    add_events(engine, *make_events(2))
    with open_server(engine) as server:
        first = server.get(LEADERBOARD)
        assert invocations(first) == 2
        write_demo_from_another_process(database_url)
        with computing_afresh(), Session(engine) as session:
            top = queries.leaderboard(session, filter=UsageFilter(kind=Kind.AGENT))
        expected = sum(entry.invocations for entry in top)
        assert expected > 2
        after = revalidate(server, LEADERBOARD, first.headers["etag"])
        assert after.status_code == 200 and invocations(after) == expected


def test_callers_of_different_projects_never_share_an_etag(engine: Engine) -> None:
    add_two_projects(engine)
    query = "{ leaderboard { name } }"
    with secured_server(engine) as server:
        everyone, web, web_too, api = (
            server.key("read"),
            server.key("read", "web"),
            server.key("read", "web"),
            server.key("read", "api"),
        )
        tags = {}
        for key in (everyone, web, api):
            response = server.get(LEADERBOARD, key)
            names = {entry["name"] for entry in response.json()["items"]}
            assert ("api-only" in names) == (key != web)
            assert ("web-only" in names) == (key != api)
            tags[key] = response.headers["etag"]
        assert len(set(tags.values())) == 3
        # Another project's tag is no tag of this caller's answer: the whole answer comes.
        crossed = revalidate(server, LEADERBOARD, tags[web], api)
        assert crossed.status_code == 200
        assert "web-only" not in {entry["name"] for entry in crossed.json()["items"]}
        # Keys of one project and scope see the same answer: the same tag.
        assert revalidate(server, LEADERBOARD, tags[web], web_too).status_code == 304
        graph = {key: server.graphql(query, key) for key in (everyone, web, api)}
        assert len({response.headers["etag"] for response in graph.values()}) == 3
        assert {"name": "web-only"} not in graph[api].json()["data"]["leaderboard"]
        stale = revalidate_graphql(server, query, graph[web].headers["etag"], api)
        assert stale.status_code == 200
        # A key that may not read is refused, whatever tag it sends; no key, 401.
        writer = server.key("write")
        refused = revalidate(server, LEADERBOARD, tags[everyone], writer)
        assert refused.status_code == 403 and "etag" not in refused.headers
        refused_graph = revalidate_graphql(server, query, graph[everyone].headers["etag"], writer)
        assert refused_graph.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "etag" not in refused_graph.headers
        assert revalidate(server, LEADERBOARD, tags[everyone]).status_code == 401


def test_what_reads_the_clock_errors_and_mutations_get_no_etag(engine: Engine) -> None:
    add_events(engine, *make_events(2))
    until = (BASE_TIME + timedelta(days=2)).isoformat()
    history = '{ history(kind: AGENT, name: "code-reviewer") { buckets { invocations } } }'
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
    with open_server(engine) as server:
        untagged = [
            server.graphql('{ agent(name: "nobody") { invocations } }'),
            server.graphql("{ leaderboard(limit: 0) { name } }"),
            server.graphql("{ nothing }"),
            server.get(LEADERBOARD, limit=0),
            server.get("/v1/agents/nobody/analytics"),
            server.graphql(mutation, event=event),
            # These read the clock: a history up to now, a report of the current period.
            server.graphql(history),
            server.graphql("{ report { totals { invocations } } }"),
            server.get("/v1/agents/code-reviewer/history"),
            server.get("/v1/analytics/report"),
            # Tasks and their invocations are no cached answers.
            server.graphql("{ tasks { items { taskId } } }"),
            server.get("/v1/tasks"),
            server.graphql("{ __typename }"),
            server.get("/healthz"),
        ]
        for response in untagged:
            assert "etag" not in response.headers, response.request.url
        clock = server.get("/v1/agents/code-reviewer/history")
        assert revalidate(server, "/v1/agents/code-reviewer/history", '"x"').status_code == 200
        assert clock.status_code == 200
        # With its end given, a history reads no clock: it is tagged.
        pinned = server.get("/v1/agents/code-reviewer/history", until=until)
        assert pinned.status_code == 200
        etag = pinned.headers["etag"]
        assert revalidate(
            server, "/v1/agents/code-reviewer/history", etag, until=until
        ).status_code == (304)


def test_a_postgresql_answer_reads_one_snapshot(postgresql_url: str) -> None:
    engine = make_engine(postgresql_url)
    upgrade(engine)
    gateway = Gateway(engine, timeout_seconds=30)
    try:
        add_events(engine, *make_events(2))
        scope = UsageFilter(kind=Kind.AGENT)
        with gateway.session(deadline=gateway.deadline()) as session, computing_afresh():
            before = queries.usage_stats(session, filter=scope).invocations
            version = data_version.current(session)
            # Another connection commits between two statements of one answer.
            add_events(engine, make_event(name="debugger"))
            assert queries.usage_stats(session, filter=scope).invocations == before == 2
            assert data_version.current(session) == version
            level = session.execute(text("SHOW transaction_isolation")).scalar()
            assert level == "repeatable read"
        with gateway.session() as session, computing_afresh():
            assert queries.usage_stats(session, filter=scope).invocations == 3
        # The engine's own sessions are untouched: the write path still writes.
        with engine.connect() as connection:
            level = connection.execute(text("SHOW transaction_isolation")).scalar()
            assert level == "read committed"
    finally:
        gateway.close()
        engine.dispose()


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
