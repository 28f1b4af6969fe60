"""Authentication on a real server: which routes need a key, 401 and 403 on every surface,
scopes, revocation, logs without keys, and when authentication is on at all."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import Result
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from claude_api.client.app import app as cli_app
from claude_api.config import Settings
from claude_api.models.keys import list_keys, revoke_key
from claude_api.server.app import create_app
from claude_api.server.auth import AuthPolicy, KeyVerifier, is_loopback
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.auth_support import (
    Secured,
    database_url,
    error_codes,
    secured_server,
    settings_for,
)
from tests.factories import add_events, make_event
from tests.live_server import serve

QUERY = "{ agents { items { name invocations } } }"
RECORD = """
mutation R($event: UsageEventInput!) { recordUsage(event: $event) { received } }
"""
REST_GETS = [
    "/v1/agents",
    "/v1/agents/leaderboard",
    "/v1/agents/code-reviewer/analytics",
    "/v1/agents/code-reviewer/history",
    "/v1/skills",
    "/v1/skills/leaderboard",
    "/v1/skills/lint-fix/analytics",
    "/v1/skills/lint-fix/history",
    "/v1/analytics/report",
    "/v1/tasks",
    "/v1/tasks/task-1",
]


def wire_event(**overrides: object) -> dict[str, object]:
    return json.loads(make_event(**overrides).model_dump_json(exclude={"cost_source"}))


def graphql_event(**overrides: object) -> dict[str, object]:
    event = make_event(**overrides)
    return {
        "eventId": str(event.event_id),
        "kind": "AGENT",
        "name": event.name,
        "taskId": event.task_id,
        "status": "COMPLETED",
        "timestamp": event.timestamp.isoformat(),
        **({"projectId": event.project_id} if event.project_id else {}),
    }


def stored_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM agent_usage")).scalar_one()


@pytest.fixture
def secured(engine: Engine) -> Iterator[Secured]:
    add_events(engine, make_event(), make_event(kind="skill", name="lint-fix"))
    with secured_server(engine) as server:
        yield server


def assert_unauthenticated(response: httpx.Response, *, invalid: bool) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="claude-api"')
    assert ('error="invalid_token"' in challenge) is invalid
    assert response.headers["content-type"].startswith("application/json")


# ---- 401 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "invalid"),
    [
        (None, False),
        ("Bearer cc_000000000000_" + "a" * 43, True),  # well formed, unknown
        ("Bearer not-a-key", True),
        ("Basic dXNlcjpwYXNz", True),
        ("Bearer " + "x" * 5000, True),
    ],
    ids=["missing", "unknown", "malformed", "basic", "huge"],
)
def test_every_surface_refuses_a_request_without_a_valid_key(
    secured: Secured, header: str | None, invalid: bool
) -> None:
    headers = {"Authorization": header} if header else {}
    before = stored_rows(secured.engine)

    def send(method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{secured.url}{path}", headers=headers, **kwargs)

    for path in REST_GETS:
        response = send("GET", path)
        assert_unauthenticated(response, invalid=invalid)
        assert response.json()["message"]
    graphql = send("POST", "/graphql", json={"query": QUERY})
    assert_unauthenticated(graphql, invalid=invalid)
    assert error_codes(graphql) == ["UNAUTHENTICATED"]
    assert "data" not in graphql.json()
    assert_unauthenticated(send("GET", "/graphql", params={"query": QUERY}), invalid=invalid)
    mutation = send(
        "POST", "/graphql", json={"query": RECORD, "variables": {"event": graphql_event()}}
    )
    assert_unauthenticated(mutation, invalid=invalid)
    assert_unauthenticated(send("POST", "/v1/events", json=wire_event()), invalid=invalid)
    assert_unauthenticated(send("POST", "/v1/task", json={"prompt": "hi"}), invalid=invalid)
    assert_unauthenticated(send("GET", "/v1/no-such-route"), invalid=invalid)
    assert stored_rows(secured.engine) == before


def test_public_routes_need_no_key(secured: Secured) -> None:
    health = secured.get("/healthz")
    assert health.status_code == 200 and health.json()["auth"] == "required"
    document = secured.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "401" in document["paths"]["/v1/agents"]["get"]["responses"]
    page = httpx.get(f"{secured.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    asset = httpx.get(f"{secured.url}/graphql/static/react-18.2.0/react.production.min.js")
    assert asset.status_code == 200
    # GET /graphql without a query runs nothing, with or without a key.
    assert httpx.get(f"{secured.url}/graphql").status_code == 400


# ---- scopes --------------------------------------------------------------------------------


def test_a_read_key_reads_and_may_not_write(secured: Secured) -> None:
    key = secured.key("read")
    before = stored_rows(secured.engine)
    assert {item["name"] for item in secured.data(QUERY, key)["agents"]["items"]} == {
        "code-reviewer"
    }
    for path in REST_GETS:
        assert secured.get(path, key).status_code == 200, path
    mutation = secured.graphql(RECORD, key, event=graphql_event())
    assert error_codes(mutation) == ["FORBIDDEN"]
    assert "scope is read" in mutation.json()["errors"][0]["message"]
    refused = secured.post("/v1/events", wire_event(), key)
    assert refused.status_code == 403
    assert "may not record events" in refused.json()["message"]
    assert secured.post("/v1/task", {"prompt": "hi"}, key).status_code == 403
    assert stored_rows(secured.engine) == before


def test_a_write_key_records_and_may_not_read(secured: Secured) -> None:
    key = secured.key("write")
    assert secured.post("/v1/events", wire_event(), key).json() == {"received": 1}
    recorded = secured.graphql(RECORD, key, event=graphql_event())
    assert recorded.json() == {"data": {"recordUsage": {"received": 1}}}
    query = secured.graphql(QUERY, key)
    assert error_codes(query) == ["FORBIDDEN"]
    assert query.json()["errors"][0]["path"] == ["agents"]
    for path in REST_GETS:
        response = secured.get(path, key)
        assert response.status_code == 403, path
        assert "may not read analytics" in response.json()["message"]
    assert secured.post("/v1/task", {"prompt": "hi"}, key).status_code == 403
    assert stored_rows(secured.engine) == 3


def test_an_admin_key_may_do_everything(secured: Secured) -> None:
    key = secured.key("admin")
    assert secured.data(QUERY, key)["agents"]["items"]
    assert all(secured.get(path, key).status_code == 200 for path in REST_GETS)
    assert secured.post("/v1/events", wire_event(), key).status_code == 200
    assert secured.data(RECORD, key, event=graphql_event())["recordUsage"]["received"] == 1
    # Past authorization: the request itself is checked (an empty prompt is invalid).
    assert secured.post("/v1/task", {"prompt": ""}, key).status_code == 422


def test_introspection_needs_a_key_but_no_scope(secured: Secured) -> None:
    assert secured.graphql("{ __typename }").status_code == 401
    assert secured.data("{ __typename }", secured.key("write")) == {"__typename": "Query"}


# ---- revocation, caching, last use ---------------------------------------------------------


def test_a_revoked_key_stops_working_at_once_without_a_cache(secured: Secured) -> None:
    key = secured.key("read")
    assert secured.get("/v1/agents", key).status_code == 200
    env = {"CLAUDE_API_DATABASE_URL": database_url(secured.engine)}
    result = CliRunner().invoke(cli_app, ["keys", "revoke", key[:15]], env=env)
    assert result.exit_code == 0, result.stderr
    assert_unauthenticated(secured.get("/v1/agents", key), invalid=True)
    assert_unauthenticated(secured.graphql(QUERY, key), invalid=True)


def test_a_revoked_key_stops_working_within_the_cache_time(engine: Engine) -> None:
    with secured_server(engine, auth_cache_seconds=1.0) as server:
        key = server.key("read")
        assert server.get("/v1/agents", key).status_code == 200
        with Session(engine) as session:
            revoke_key(session, key)
            session.commit()
        deadline = time.monotonic() + 5
        while server.get("/v1/agents", key).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works after 5 s"
            time.sleep(0.1)
        assert_unauthenticated(server.get("/v1/agents", key), invalid=True)


def test_the_verifier_trusts_a_key_for_its_ttl_only(engine: Engine) -> None:
    with secured_server(engine) as server:
        key = server.key("read")
    verifier = KeyVerifier(engine, ttl=0.5)
    assert verifier.verify(key).scope.value == "read"
    with Session(engine) as session:
        revoke_key(session, key)
        session.commit()
    assert verifier.cached(key) is not None
    time.sleep(0.6)
    assert verifier.cached(key) is None


def test_the_last_use_is_noted(secured: Secured) -> None:
    key = secured.key("read")
    assert secured.get("/v1/agents", key).status_code == 200
    with Session(secured.engine) as session:
        [info] = list_keys(session)
    assert info.last_used_at is not None


# ---- logs ----------------------------------------------------------------------------------


def test_failed_authentications_are_logged_without_the_key(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    key = secured.key("read")
    secret = key.rsplit("_", 1)[1]
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with caplog.at_level(logging.DEBUG):
        assert secured.get("/v1/agents", wrong).status_code == 401
        assert secured.get("/v1/tasks").status_code == 401
        assert secured.get("/v1/agents", key).status_code == 200
        assert secured.graphql(QUERY, "garbage-" + secret).status_code == 401
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    texts = [r.getMessage() for r in warnings]
    assert any("wrong secret" in t and key[:15] in t for t in texts), texts
    assert any("no Authorization header" in t and "/v1/tasks" in t for t in texts), texts
    assert any("malformed key" in t for t in texts), texts
    everything = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert secret not in everything and wrong.rsplit("_", 1)[1] not in everything


# ---- when authentication is on -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_addresses(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("mode", "bind", "client_side", "required"),
    [
        ("auto", "127.0.0.1", "127.0.0.1", False),
        ("auto", "localhost", "127.0.0.1", False),
        ("auto", "0.0.0.0", "127.0.0.1", True),  # reachable from elsewhere: keys even locally
        ("auto", "10.1.2.3", "10.1.2.3", True),
        ("auto", None, "127.0.0.1", False),  # bind unknown: the connection's address decides
        ("auto", None, "10.1.2.3", True),
        ("required", "127.0.0.1", "127.0.0.1", True),
        ("off", "127.0.0.1", "127.0.0.1", False),
    ],
)
def test_the_auth_policy(mode: str, bind: str | None, client_side: str, required: bool) -> None:
    policy = AuthPolicy.of(Settings(auth=mode), bind)
    assert policy.required({"type": "http", "server": (client_side, 8000)}) is required


def test_auth_off_is_refused_on_a_public_address() -> None:
    with pytest.raises(ValueError, match="CLAUDE_API_ALLOW_PUBLIC_WITHOUT_AUTH"):
        create_app(Settings(auth="off"), bind_host="0.0.0.0")
    create_app(Settings(auth="off", allow_public_without_auth=True), bind_host="0.0.0.0")
    create_app(Settings(auth="off"), bind_host="127.0.0.1")
    result = CliRunner().invoke(
        cli_app, ["serve", "--host", "0.0.0.0"], env={"CLAUDE_API_AUTH": "off"}
    )
    assert result.exit_code == 1
    assert "CLAUDE_API_AUTH=off" in result.stderr


@contextmanager
def serve_with(engine: Engine, *, bind_host: str | None, **overrides: object) -> Iterator[str]:
    """A server on loopback that believes it is bound to `bind_host`."""
    settings = settings_for(engine, **overrides)
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    try:
        with serve(create_app(settings, services=services, bind_host=bind_host)) as url:
            yield url
    finally:
        tracker.close()


@pytest.mark.parametrize(
    ("bind_host", "mode", "required"),
    [
        (None, "auto", False),
        ("127.0.0.1", "auto", False),
        ("0.0.0.0", "auto", True),
        ("127.0.0.1", "required", True),
    ],
)
def test_loopback_is_open_by_default_and_closed_when_asked(
    engine: Engine, bind_host: str | None, mode: str, required: bool
) -> None:
    add_events(engine, make_event())
    with serve_with(engine, bind_host=bind_host, auth=mode) as url:
        assert httpx.get(f"{url}/healthz").json()["auth"] == ("required" if required else "off")
        status = httpx.get(f"{url}/v1/agents").status_code
        posted = httpx.post(f"{url}/v1/events", json=wire_event()).status_code
    assert (status, posted) == ((401, 401) if required else (200, 200))


# ---- the CLI over HTTP ---------------------------------------------------------------------


def run_cli(secured: Secured, *args: str, key: str | None) -> Result:
    env = {
        "CLAUDE_API_URL": secured.url,
        "CLAUDE_API_KEY": key,
        "CLAUDE_API_DATABASE_URL": "sqlite:////nonexistent/never-used.db",
        "COLUMNS": "100",
    }
    return CliRunner().invoke(cli_app, list(args), env=env)


def test_the_cli_sends_its_key_over_http(secured: Secured, tmp_path: Path) -> None:
    read = secured.key("read")
    stats = run_cli(secured, "agents", "stats", "--json", key=read)
    assert stats.exit_code == 0, stats.stderr
    assert json.loads(stats.stdout)[0]["name"] == "code-reviewer"
    target = tmp_path / "all.jsonl"
    export = run_cli(secured, "analytics", "export", "-o", str(target), key=read)
    assert export.exit_code == 0, export.stderr
    assert len(target.read_text().splitlines()) == 2

    missing = run_cli(secured, "agents", "stats", key=None)
    assert missing.exit_code == 1
    assert "HTTP 401" in missing.stderr and "CLAUDE_API_KEY" in missing.stderr
    refused = run_cli(secured, "analytics", "export", "-o", str(tmp_path / "x.csv"), key="cc_x")
    assert refused.exit_code == 1 and not (tmp_path / "x.csv").exists()
    write_only = run_cli(secured, "agents", "stats", key=secured.key("write"))
    assert write_only.exit_code == 1
    assert "may not read analytics" in write_only.stderr
