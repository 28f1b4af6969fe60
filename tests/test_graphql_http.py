"""The /graphql transport on real uvicorn: media types, status codes, errors, offline GraphiQL."""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import strawberry
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.types import ExecutionContext

from claude_api.errors import InvalidEvents, InvalidFilter, NotFound
from claude_api.graph.errors import log_errors
from claude_api.graph.http import (
    GRAPHIQL_ASSETS,
    GRAPHQL_RESPONSE_JSON,
    JSON,
    GraphQLApp,
    graphql_routes,
    localize_graphiql_page,
    negotiate_media_type,
    schema_extensions,
)
from tests.live_server import serve

SECRET = "password=hunter2"
NEW = {"accept": GRAPHQL_RESPONSE_JSON}
LEGACY = {"accept": JSON}


@dataclass
class Context:
    request_id: str


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"Hello {name}"

    @strawberry.field
    def agents(self, since: str | None = None) -> list[str] | None:
        raise InvalidFilter("since", "must be an ISO 8601 timestamp")

    @strawberry.field
    def agent(self, name: str) -> str | None:
        raise NotFound(f"no agent named {name}")

    @strawberry.field
    def crash(self) -> str | None:
        raise RuntimeError(f"database said {SECRET}")

    @strawberry.field
    def request_id(self, info: strawberry.Info[Context, None]) -> str:
        return info.context.request_id


@strawberry.type
class Mutation:
    @strawberry.mutation
    def bump(self) -> int:
        return 1

    @strawberry.mutation
    def record(self) -> int:
        raise InvalidEvents([{"field": "events[0].kind", "message": "must be agent or skill"}])


class QuietSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors, execution_context)


async def async_context(request: Request) -> Context:
    return Context(request_id=request.headers.get("x-request-id", "none"))


def sync_context(request: Request) -> Context:
    return Context(request_id="sync")


class RecordRequests:
    """ASGI middleware noting each request's method and path, to see what a browser fetched."""

    def __init__(self, app: ASGIApp, seen: list[tuple[str, str]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@dataclass
class Live:
    url: str
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    schema = QuietSchema(Query, Mutation, extensions=schema_extensions())
    routes = [
        *graphql_routes(GraphQLApp(schema, context_getter=async_context)),
        *graphql_routes(GraphQLApp(schema, context_getter=sync_context, graphiql=False), "/plain"),
        Mount("/api", routes=graphql_routes(GraphQLApp(schema))),
    ]
    seen: list[tuple[str, str]] = []
    app = RecordRequests(Starlette(routes=routes), seen)
    with serve(app) as url:
        yield Live(url, seen)


def post(live: Live, body: object, **headers: str) -> httpx.Response:
    return httpx.post(live.graphql, json=body, headers=headers)


def error_codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


# --- media type negotiation


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8, {JSON}; charset=utf-8", GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, {JSON};q=0.9", GRAPHQL_RESPONSE_JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE_JSON};q=0.5", JSON),
        (f"{JSON};q=0, */*", GRAPHQL_RESPONSE_JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        ("text/plain", None),
        (f"{JSON};q=0", None),
        (f"{JSON};q=abc", None),
    ],
)
def test_negotiate_media_type(accept: str | None, expected: str | None) -> None:
    assert negotiate_media_type(accept) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, JSON),
        ({"accept": "*/*"}, JSON),
        (LEGACY, JSON),
        (NEW, GRAPHQL_RESPONSE_JSON),
        ({"accept": f"{GRAPHQL_RESPONSE_JSON}, {JSON};q=0.9"}, GRAPHQL_RESPONSE_JSON),
    ],
)
def test_post_answers_in_the_negotiated_media_type(
    live: Live, headers: dict[str, str], expected: str
) -> None:
    response = post(live, {"query": "{ hello }"}, **headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{expected}; charset=utf-8"
    assert "accept" in response.headers["vary"].lower()
    assert response.json() == {"data": {"hello": "Hello world"}}


def test_unacceptable_accept_is_406(live: Live) -> None:
    response = post(live, {"query": "{ hello }"}, accept="text/plain")
    assert response.status_code == 406
    assert response.headers["content-type"].startswith(JSON)
    assert error_codes(response) == ["NOT_ACCEPTABLE"]


# --- methods


def test_get_runs_a_query(live: Live) -> None:
    params = {"query": "query($n: String!) { hello(name: $n) }", "variables": '{"n": "GET"}'}
    response = httpx.get(live.graphql, params=params, headers=NEW)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    assert response.json() == {"data": {"hello": "Hello GET"}}


@pytest.mark.parametrize("headers", [LEGACY, NEW])
def test_get_mutation_is_405(live: Live, headers: dict[str, str]) -> None:
    response = httpx.get(live.graphql, params={"query": "mutation { bump }"}, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert error_codes(response) == ["METHOD_NOT_ALLOWED"]


def test_post_mutation(live: Live) -> None:
    assert post(live, {"query": "mutation { bump }"}).json() == {"data": {"bump": 1}}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(live: Live, method: str) -> None:
    response = httpx.request(method, live.graphql, json={"query": "{ hello }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert error_codes(response) == ["METHOD_NOT_ALLOWED"]


# --- request errors: 200 with application/json, 400 with the newer type, never a `data` entry


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "{ hello(name: 5) }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "query($n: String!) { hello(name: $n) }"}, "BAD_USER_INPUT"),
        (
            {"query": "query($n: String!) { hello(name: $n) }", "variables": {"n": 5}},
            "BAD_USER_INPUT",
        ),
        ({"query": "query A { hello }", "operationName": "B"}, "OPERATION_RESOLUTION_FAILURE"),
    ],
)
@pytest.mark.parametrize(("headers", "status"), [(LEGACY, 200), (NEW, 400)])
def test_request_errors(
    live: Live, body: dict[str, Any], code: str, headers: dict[str, str], status: int
) -> None:
    response = post(live, body, **headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(headers["accept"])
    payload = response.json()
    assert "data" not in payload
    assert [error["extensions"]["code"] for error in payload["errors"]] == [code]
    assert payload["errors"][0]["message"]


# --- malformed requests: 400 (or 415) with a JSON error body, whatever the media type


@pytest.mark.parametrize(
    "content",
    [
        b"NONSENSE",
        b'{"query":',
        b"",
        b'"{ hello }"',
        b"42",
        b"null",
        b"[]",
        b'[{"query": "{ hello }"}]',
        b"{}",
        b'{"qeury": "{ hello }"}',
        b'{"query": null}',
        b'{"query": 42}',
        b'{"query": {"a": 1}}',
        b'{"query": "{ hello }", "variables": [7]}',
        b'{"query": "{ hello }", "variables": "x"}',
        b'{"query": "{ hello }", "operationName": {"a": 1}}',
        b'{"query": "{ hello }", "operationName": 42}',
        b'{"query": "{ hello }", "extensions": 1}',
    ],
)
@pytest.mark.parametrize("headers", [{}, LEGACY, NEW])
def test_malformed_request_is_400(live: Live, content: bytes, headers: dict[str, str]) -> None:
    response = httpx.post(live.graphql, content=content, headers={"content-type": JSON, **headers})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(headers.get("accept", JSON))
    payload = response.json()
    assert payload["errors"][0]["message"]
    assert error_codes(response) == ["BAD_REQUEST"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"query": ""},
        {"query": "{ hello }", "variables": "[7]"},
        {"query": "{ hello }", "variables": "{"},
    ],
)
def test_malformed_get_is_400(live: Live, params: dict[str, str]) -> None:
    response = httpx.get(live.graphql, params=params, headers=NEW)
    assert response.status_code == 400
    assert error_codes(response) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/graphql",
        "application/x-www-form-urlencoded",
        f"{JSON}; charset=latin-1",
    ],
)
def test_unsupported_media_type_is_415(live: Live, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(live.graphql, content=b'{"query": "{ hello }"}', headers=headers)
    assert response.status_code == 415
    assert error_codes(response) == ["UNSUPPORTED_MEDIA_TYPE"]


# --- field errors: 200 with both media types, each error with a code


@pytest.mark.parametrize("headers", [LEGACY, NEW])
def test_invalid_filter_is_bad_user_input(live: Live, headers: dict[str, str]) -> None:
    response = post(live, {"query": '{ agents(since: "yesterday") hello }'}, **headers)
    assert response.status_code == 200
    payload = response.json()
    assert payload["data"] == {"agents": None, "hello": "Hello world"}
    [error] = payload["errors"]
    assert error["path"] == ["agents"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "since"}
    assert "since" in error["message"]


def test_not_found(live: Live) -> None:
    response = post(live, {"query": '{ agent(name: "ghost") }'}, **NEW)
    assert response.status_code == 200
    assert error_codes(response) == ["NOT_FOUND"]
    assert "ghost" in response.json()["errors"][0]["message"]


def test_invalid_events_is_bad_user_input_listing_problems(live: Live) -> None:
    response = post(live, {"query": "mutation { record }"}, **NEW)
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "problems": [{"field": "events[0].kind", "message": "must be agent or skill"}],
    }


@pytest.mark.parametrize("headers", [LEGACY, NEW])
def test_unexpected_error_is_masked_and_logged(
    live: Live, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="claude_api.graph.errors")
    response = post(live, {"query": "query Crashing { crash hello }"}, **headers)
    assert response.status_code == 200
    payload = response.json()
    assert payload["data"] == {"crash": None, "hello": "Hello world"}
    assert payload["errors"] == [
        {
            "message": "internal error",
            "locations": [{"line": 1, "column": 18}],
            "path": ["crash"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    assert SECRET not in response.text
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Crashing" in record.getMessage()
    assert record.exc_info is not None
    assert SECRET in str(record.exc_info[1])


def test_client_errors_are_not_logged_as_errors(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    post(live, {"query": "{ agents }"})
    post(live, {"query": "{ nope }"})
    post(live, {"query": "mutation { record }"})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- context


def test_async_context_getter(live: Live) -> None:
    response = post(live, {"query": "{ requestId }"}, **{"x-request-id": "abc-123"})
    assert response.json() == {"data": {"requestId": "abc-123"}}


def test_sync_context_getter(live: Live) -> None:
    response = httpx.post(f"{live.url}/plain", json={"query": "{ requestId }"})
    assert response.json() == {"data": {"requestId": "sync"}}


# --- gql, the client our CLI uses


def test_gql_client(live: Live) -> None:
    transport = HTTPXTransport(url=live.graphql)
    with Client(transport=transport, fetch_schema_from_transport=True) as session:
        request = GraphQLRequest(
            "query Hello($n: String!) { hello(name: $n) }", variable_values={"n": "gql"}
        )
        assert session.execute(request) == {"hello": "Hello gql"}
        with pytest.raises(TransportQueryError) as raised:
            session.execute(GraphQLRequest('{ agents(since: "x") }'))
    assert raised.value.errors is not None
    assert raised.value.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "since"}


# --- GraphiQL


class AssetReferences(HTMLParser):
    """Collects the src/href of every script and link, with its integrity attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else values.get("href")
        if tag in ("script", "link") and url:
            self.references.append((url, values.get("integrity")))


def page_references(page: str) -> list[tuple[str, str | None]]:
    parser = AssetReferences()
    parser.feed(page)
    return [(url, integrity) for url, integrity in parser.references if not url.startswith("data:")]


def sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_graphiql_page_loads_every_asset_from_this_service(live: Live, prefix: str) -> None:
    page = httpx.get(f"{live.url}{prefix}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "unpkg.com" not in page.text and "jsdelivr" not in page.text
    references = page_references(page.text)
    assert len(references) == len(GRAPHIQL_ASSETS)
    for url, integrity in references:
        assert url.startswith(f"{prefix}/graphql/static/"), url
        asset = httpx.get(f"{live.url}{url}")
        assert asset.status_code == 200, url
        expected_type = "text/css" if url.endswith(".css") else "javascript"
        assert expected_type in asset.headers["content-type"], url
        assert len(asset.content) > 500, url
        assert integrity == sri(asset.content), url  # the browser would refuse it otherwise
        assert "immutable" in asset.headers["cache-control"]


def test_graphiql_css_loads_no_remote_fonts(live: Live) -> None:
    for url, _ in page_references(httpx.get(live.graphql, headers={"accept": "text/html"}).text):
        if url.endswith(".css"):
            css = httpx.get(f"{live.url}{url}").text
            assert "@import" not in css
            assert "url(http" not in css.replace('"', "").replace("'", "")


def test_browser_accept_header_gets_the_page(live: Live) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = httpx.get(live.graphql, headers={"accept": accept})
    assert response.headers["content-type"].startswith("text/html")


def test_query_less_get_without_html_is_400_not_the_page(live: Live) -> None:
    response = httpx.get(live.graphql, headers={"accept": "*/*"})
    assert response.status_code == 400
    assert error_codes(response) == ["BAD_REQUEST"]


def test_graphiql_can_be_turned_off(live: Live) -> None:
    accept = "text/html,*/*;q=0.8"
    response = httpx.get(f"{live.url}/plain", headers={"accept": accept})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(JSON)


def test_page_with_an_unknown_asset_is_refused() -> None:
    page = '<script src="https://unpkg.com/graphiql@9.9.9/graphiql.min.js"></script>'
    with pytest.raises(RuntimeError):
        localize_graphiql_page(page, "/graphql/static")
    extra = "".join(f'<script src="{url}"></script>' for url in GRAPHIQL_ASSETS)
    with pytest.raises(RuntimeError, match="elsewhere"):
        localize_graphiql_page(extra + '<link href="//cdn.example/x.css">', "/graphql/static")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_graphiql_renders_in_headless_chromium_without_internet(live: Live) -> None:
    assert CHROMIUM is not None
    live.seen.clear()
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            # Every host but loopback fails to resolve: an asset from elsewhere cannot load.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            live.graphql,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    for class_name in ("graphiql-editors", "graphiql-execute-button", "graphiql-response"):
        assert class_name in dom
    assert "Loading..." not in dom
    # The page fetched every asset and then ran its introspection query against us.
    fetched = {path for method, path in live.seen if method == "GET"}
    assert {f"/graphql/static/{path}" for path in GRAPHIQL_ASSETS.values()} <= fetched
    assert ("POST", "/graphql") in live.seen
