"""Fuzzing a live server with a bounded, reproducible budget: schemathesis over every REST operation
of /openapi.json (but POST /v1/task, which runs Claude Code) and every GraphQL root field, with
valid and invalid inputs, plus raw bodies for the two POST endpoints. No 5xx, no traceback in a
response, no change to the stored data from a rejected request (nor from any read)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import graphql
import httpx
import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
)
from sqlalchemy import Engine
from sqlmodel import SQLModel

from claude_api.config import Settings
from claude_api.models.events import Status
from claude_api.server.app import create_app
from tests.factories import add_events, make_event, make_events
from tests.live_server import serve

EXAMPLES = 10  # per operation and generation mode
RAW_EXAMPLES = 100  # raw bodies per POST endpoint
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI is reproducible
    database=None,
    suppress_health_check=list(HealthCheck),
)
NOT_FUZZED = {"POST /v1/task"}  # starts a Claude Code process per request
# A traceback, or a database error passed through as it was raised.
TRACEBACK_MARKERS = (
    "Traceback (most recent call last)",
    "[SQL:",
    "sqlalchemy.exc.",
    "psycopg.errors.",
    "sqlite3.OperationalError",
)
# Checks that judge the OpenAPI document's precision or authentication, not the server's
# robustness: the document accepts some values the validation refuses (time zones, cursors,
# timestamps before 2000), and marks Authorization required although the fuzzed server runs
# with authentication off.
EXCLUDED_CHECKS = [
    positive_data_acceptance,
    negative_data_rejection,
    ignored_auth,
    missing_required_header,
]
# GraphQL: an argument's type does not say "1 to 200 characters", so valid-looking inputs are
# refused; and schemathesis's server-error check counts any error code it does not know as a
# server fault, NOT_FOUND among them: `graphql_error_codes` below judges the codes instead.
GRAPHQL_EXCLUDED_CHECKS = [positive_data_acceptance, not_a_server_error]
# Codes that say the caller asked for something wrong or absent (schemathesis's client markers,
# and this API's NOT_FOUND and authorisation codes). INTERNAL_SERVER_ERROR, QUERY_TIMEOUT or no
# code at all is a finding.
GRAPHQL_CLIENT_CODES = frozenset(
    {
        "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "BAD_REQUEST",
        "NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED",
    }
)  # fmt: skip


@dataclass
class Live:
    url: str
    engine: Engine
    requests: Counter[str] = field(default_factory=Counter)
    problems: dict[str, str] = field(default_factory=dict)  # the last (shrunk) per operation


@pytest.fixture
def live(database_url: str) -> Iterator[Live]:
    """The whole app under uvicorn on loopback, authentication off, with some usage stored."""
    # No purge while the fuzzer runs: it stores events dated centuries ago, which a purge would
    # remove in the middle of a check that the data did not change.
    app = create_app(Settings(database_url=database_url, auth="off"), purge_delay=86_400)
    with serve(app) as url:
        engine = app.state.services.engine
        add_events(engine, *make_events(10), *make_events(5, kind="skill", name="lint-fix"))
        add_events(engine, make_event(status=Status.RUNNING, task_id="task-2"))
        yield Live(url, engine)


def fingerprint(engine: Engine) -> str:
    """A digest of every row of every table: equal digests, unchanged data."""
    digest = hashlib.sha256()
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            rows = sorted(repr(tuple(row)) for row in connection.execute(sa.select(table)))
            digest.update(f"{table.name}:{len(rows)}:{rows}".encode())
    return digest.hexdigest()


def problems_of(status: int, text: str) -> list[str]:
    found = []
    if status >= 500:
        found.append(f"answered {status}")
    found += [f"body holds {marker!r}" for marker in TRACEBACK_MARKERS if marker in text]
    return found


def graphql_error_codes(text: str) -> list[str]:
    """Problems with the errors of a GraphQL answer: each must carry a client-error code."""
    try:
        body = json.loads(text)
    except ValueError:
        return []  # not JSON: schemathesis's own check reports it
    errors = body.get("errors") if isinstance(body, dict) else None
    codes = [((error.get("extensions") or {}).get("code")) for error in errors or []]
    return [f"GraphQL error code {code!r}" for code in codes if code not in GRAPHQL_CLIENT_CODES]


def rejected_graphql(text: str) -> bool:
    """A GraphQL answer with errors and no data for any root field: nothing may have changed."""
    try:
        body = json.loads(text)
    except ValueError:
        return True
    if not isinstance(body, dict) or not body.get("errors"):
        return False
    data = body.get("data")
    return data is None or all(value is None for value in data.values())


@dataclass(frozen=True)
class Judge:
    """What counts as a failure for one API: the checks left out, and which answers reject the
    request (so nothing may have changed) or come from a read (likewise)."""

    excluded_checks: list[Any]
    rejected: Callable[[int, str], bool]
    read_only: Callable[[Any], bool]
    extra_check: Callable[[str], list[str]] = lambda _text: []


def fuzz_operations(live: Live, schema: Any, judge: Judge) -> None:
    """Every operation of `schema`, valid and invalid inputs; problems are collected in `live`."""
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.label in NOT_FUZZED:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    strategy = operation.as_strategy(generation_mode=mode)
                except Exception as error:  # an operation without inputs has no invalid ones
                    if mode is GenerationMode.NEGATIVE:
                        continue
                    raise AssertionError(f"{operation.label}: no strategy: {error}") from error
                key = f"{operation.label} [{mode.value}]"
                try:
                    fuzz_one(live, session, judge, key, strategy)
                except AssertionError:
                    pass  # recorded in live.problems
                except Unsatisfiable:  # no invalid inputs exist (GET /healthz takes none)
                    assert mode is GenerationMode.NEGATIVE, key


def fuzz_one(live: Live, session: requests.Session, judge: Judge, key: str, strategy: Any) -> None:
    @FUZZ
    @given(case=strategy)
    def one(case: Any) -> None:
        before = fingerprint(live.engine)
        response = case.call(session=session)
        live.requests[key] += 1
        found = problems_of(response.status_code, response.text)
        found += judge.extra_check(response.text)
        if fingerprint(live.engine) != before and (
            judge.read_only(case) or judge.rejected(response.status_code, response.text)
        ):
            found.append(f"a rejected request or a read changed the data ({response.status_code})")
        try:
            case.validate_response(response, excluded_checks=judge.excluded_checks)
        except (Exception, BaseExceptionGroup) as failure:  # schemathesis: a group of failures
            found.append(" ".join(str(failure).split())[:600])
        if found:
            # Kept per operation: the last one is hypothesis's shrunk example.
            live.problems[key] = f"{'; '.join(found)}\n  {case.as_curl_command()}"
            raise AssertionError(f"{key}: {live.problems[key]}")

    one()


REST = Judge(
    excluded_checks=EXCLUDED_CHECKS,
    rejected=lambda status, _text: 400 <= status < 500,
    read_only=lambda case: case.method.upper() == "GET",
)
GRAPHQL = Judge(
    excluded_checks=GRAPHQL_EXCLUDED_CHECKS,
    rejected=lambda status, text: status >= 400 or rejected_graphql(text),
    read_only=lambda case: not case.operation.label.startswith("Mutation."),
    extra_check=graphql_error_codes,
)


def assert_fuzzed(live: Live, *, operations: int) -> None:
    """Every operation was called (one without inputs, or with few, runs out of new ones)."""
    called = {key.rsplit(" [", 1)[0] for key in live.requests}
    assert len(called) >= operations, live.requests
    assert sum(live.requests.values()) >= operations * EXAMPLES, live.requests


def test_fuzz_rest(live: Live) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    fuzz_operations(live, schema, REST)
    assert live.problems == {}
    assert_fuzzed(live, operations=13)


def test_fuzz_graphql(live: Live) -> None:
    schema = schemathesis.graphql.from_url(f"{live.url}/graphql")
    fuzz_operations(live, schema, GRAPHQL)
    assert live.problems == {}
    assert_fuzzed(live, operations=14)


# ---- raw bodies ---------------------------------------------------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["agent", "skill", "running", "completed", "2026-05-01T10:00:00+00:00"])
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
EVENT_KEYS = ("event_id", "kind", "name", "task_id", "timestamp", "status", "cost_usd", "source")


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Bodies a careless or hostile client sends: arbitrary bytes, JSON of any shape, events
    with wrong values in the right keys, and JSON with NaN, deep nesting or NUL characters."""
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return json.dumps(draw(JSON_VALUES)).encode()
    if choice == 2:
        event = {key: draw(JSON_VALUES) for key in draw(st.sets(st.sampled_from(EVENT_KEYS)))}
        return json.dumps({"events": [event]}).encode()
    if choice == 3:
        depth = draw(st.integers(1, 5_000))
        return b'{"events": ' + b"[" * depth + b"]" * depth + b"}"
    special = draw(
        st.sampled_from(["NaN", "Infinity", "-Infinity", '"\\u0000"', '"a\\u0000b"', "1e400"])
    )
    return (
        '{"event_id": "6f1c1f5e-8a2e-4a53-9b8a-1f0e6c1d2b3a", "kind": "agent", '
        f'"name": {special}, "task_id": "t", "timestamp": "2026-05-01T10:00:00+00:00", '
        f'"status": "completed", "cost_usd": {special}, "source": "fuzz"}}'
    ).encode()


def graphql_body(raw: bytes) -> bytes:
    return json.dumps({"query": raw.decode("utf-8", "replace")}).encode()


def has_empty_selection_set(query: str) -> bool:
    """Whether graphql-core parses `query` with a `{}` in it (the GraphQL grammar wants at least
    one selection; graphql-core 3.3 accepts none)."""
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError:
        return False
    found = False

    class Finder(graphql.Visitor):
        def enter_selection_set(self, node: graphql.SelectionSetNode, *_args: Any) -> None:
            nonlocal found
            found = found or not node.selections

    graphql.visit(document, Finder())
    return found


@pytest.mark.parametrize(
    ("path", "wrap"),
    [("/v1/events", lambda raw: raw), ("/graphql", graphql_body)],
    ids=["events", "graphql"],
)
def test_fuzz_raw_bodies(live: Live, path: str, wrap: Callable[[bytes], bytes]) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:

        @settings(FUZZ, max_examples=RAW_EXAMPLES)
        @given(body=raw_bodies())
        def one(body: bytes) -> None:
            before = fingerprint(live.engine)
            response = client.post(
                path, content=wrap(body), headers={"content-type": "application/json"}
            )
            live.requests[path] += 1
            found = problems_of(response.status_code, response.text)
            if response.status_code >= 400 and fingerprint(live.engine) != before:
                found.append("a rejected request changed the data")
            assert not found, f"{path} {body[:300]!r}: {found}: {response.text[:300]}"

        one()
    assert live.requests[path] >= RAW_EXAMPLES // 2


@pytest.mark.parametrize(
    "query", ["{}", "query {}", "{ agents {} }", "fragment F on Query {} { ...F }"]
)
def test_an_empty_selection_set_is_a_client_error(live: Live, query: str) -> None:
    """Found by the raw-body fuzz: graphql-core 3.3 parses `{}` and Strawberry's depth limiter
    raised ValueError on it, a 500; it must be a client error."""
    assert has_empty_selection_set(query)
    response = httpx.post(f"{live.url}/graphql", json={"query": query}, timeout=30)
    assert response.status_code < 500, response.text
    assert graphql_error_codes(response.text) == []
