"""Fuzzing a live server with a bounded, reproducible budget: schemathesis over every REST operation
of /openapi.json (but POST /v1/task, which runs Claude Code) and every GraphQL root field, with
valid and invalid inputs, plus raw bodies for the two POST endpoints; and JSON nested hundreds of
levels deep and NUL characters in every string field of every route. No 5xx, no traceback in a
response, no change to the stored data from a rejected request (nor from any read)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
from claude_api.events import Status
from claude_api.graph.limits import MAX_JSON_DEPTH
from claude_api.server.app import create_app
from tests.factories import add_events, make_event, make_events
from tests.fake_claude import FakeClaude
from tests.fake_claude.scenarios import success
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
def fake(tmp_path: Path) -> FakeClaude:
    """The `claude` the server would run for POST /v1/task: it records every call."""
    fake = FakeClaude(tmp_path / "fake-claude")
    fake.install(success())
    return fake


@pytest.fixture
def live(database_url: str, fake: FakeClaude) -> Iterator[Live]:
    """The whole app under uvicorn on loopback, authentication off, with some usage stored."""
    settings = Settings(database_url=database_url, auth="off", claude_bin=str(fake.path))
    # No purge while the fuzzer runs: it stores events dated centuries ago, which a purge would
    # remove in the middle of a check that the data did not change.
    app = create_app(settings, purge_delay=86_400)
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


# ---- deep nesting ------------------------------------------------------------------------------

DEPTHS = [MAX_JSON_DEPTH + 1, 300, 2_000]  # past the limit; past orjson's encoder; past decoders
SHAPES = ["array", "object"]
JSON_TYPE = {"content-type": "application/json"}
FILTERED = "query Q($filter: UsageFilterInput) { agents(filter: $filter) { items { name } } }"
RECORD = "mutation R($event: UsageEventInput!) { recordUsage(event: $event) { received } }"


def nested(shape: str, depth: int, leaf: str = "1") -> str:
    """JSON text of `depth` arrays or objects, one inside the other, around `leaf`."""
    if shape == "array":
        return "[" * depth + leaf + "]" * depth
    return '{"a": ' * depth + leaf + "}" * depth


def message_of(response: httpx.Response) -> str:
    """The error message of a REST problem or of a GraphQL response's first error."""
    body = response.json()
    return body["message"] if "message" in body else body["errors"][0]["message"]


def assert_refused(live: Live, response: httpx.Response, before: str, *, status: int) -> None:
    """`status`, a message, no traceback, and the stored data as it was."""
    assert not problems_of(response.status_code, response.text), response.text[:300]
    assert response.status_code == status, response.text[:300]
    assert message_of(response)
    assert fingerprint(live.engine) == before


def wire_event(**overrides: Any) -> dict[str, Any]:
    """A valid event as POST /v1/events takes it."""
    return json.loads(make_event(**overrides).model_dump_json(exclude={"cost_source"}))


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", SHAPES)
def test_deep_graphql_variables_are_a_400(live: Live, shape: str, depth: int) -> None:
    """Found by review: variables about 300 deep were a 500 (the kept-response key's encoder
    stops at 254 levels, the decoder at 1,024), and deeper ones a RecursionError."""
    before = fingerprint(live.engine)
    deep = nested(shape, depth)
    for query, variables in [
        (FILTERED, f'{{"filter": {deep}}}'),  # a variable the query uses
        (FILTERED, f'{{"unused": {deep}}}'),
        (FILTERED, f'{{"filter": {{"projectId": {deep}}}}}'),
        (RECORD, f'{{"event": {{"name": {deep}}}}}'),
    ]:
        body = f'{{"query": {json.dumps(query)}, "variables": {variables}}}'.encode()
        response = httpx.post(f"{live.url}/graphql", content=body, headers=JSON_TYPE, timeout=30)
        assert_refused(live, response, before, status=400)
        assert graphql_error_codes(response.text) == []
        assert f"nests deeper than {MAX_JSON_DEPTH} levels" in message_of(response)
        if depth <= 300:  # deeper does not fit a request line
            params = {"query": query, "variables": variables}
            got = httpx.get(f"{live.url}/graphql", params=params, timeout=30)
            assert_refused(live, got, before, status=400)


@pytest.mark.parametrize(("depth", "status"), [(MAX_JSON_DEPTH, 200), (MAX_JSON_DEPTH + 1, 400)])
def test_the_depth_limit_counts_the_whole_body(live: Live, depth: int, status: int) -> None:
    """JSON nested exactly as deep as allowed still runs; one level more is refused."""
    padding = nested("array", depth - 2, '"x"')  # inside the body's object and `variables`
    body = f'{{"query": {json.dumps(FILTERED)}, "variables": {{"pad": {padding}}}}}'.encode()
    response = httpx.post(f"{live.url}/graphql", content=body, headers=JSON_TYPE, timeout=30)
    assert response.status_code == status, response.text[:300]
    assert ("errors" in response.json()) is (status != 200)


@pytest.mark.parametrize("path", ["/graphql", "/v1/events", "/v1/task"])
def test_a_body_of_300000_brackets_is_a_400(live: Live, fake: FakeClaude, path: str) -> None:
    """Found by review: `/graphql` answered it with a 500 (RecursionError)."""
    before = fingerprint(live.engine)
    response = httpx.post(
        f"{live.url}{path}", content=b"[" * 300_000, headers=JSON_TYPE, timeout=30
    )
    assert_refused(live, response, before, status=400)
    assert "JSON" in message_of(response)
    assert fake.calls() == []


@pytest.mark.parametrize("depth", [300, 2_000])
@pytest.mark.parametrize("shape", ["list", "object", "selection"])
def test_deep_nesting_in_a_graphql_document_is_a_parse_error(
    live: Live, shape: str, depth: int
) -> None:
    """A request error, so 400 with the newer media type (200 with errors with the older one, as
    the GraphQL-over-HTTP spec asks)."""
    if shape == "list":
        query = "{ names(kind: " + "[" * depth + "AGENT" + "]" * depth + ") }"
    elif shape == "object":
        query = "{ agents(filter: " + "{a: " * depth + "1" + "}" * depth + ") { items { name } } }"
    else:
        query = "{ " + "agents { " * depth + "name" + " }" * depth + " }"
    for accept, status in [("application/graphql-response+json", 400), ("application/json", 200)]:
        response = httpx.post(
            f"{live.url}/graphql", json={"query": query}, headers={"accept": accept}, timeout=30
        )
        assert not problems_of(response.status_code, response.text), response.text[:300]
        assert response.status_code == status, response.text[:300]
        codes = [error["extensions"]["code"] for error in response.json()["errors"]]
        assert codes == ["GRAPHQL_PARSE_FAILED"], response.text[:300]


def rest_parameters(live: Live) -> list[tuple[str, str, str]]:
    """(path template, parameter name, where) of every REST GET's every parameter."""
    document = httpx.get(f"{live.url}/openapi.json", timeout=30).json()
    found = []
    for template, operations in document["paths"].items():
        get = operations.get("get")
        for parameter in (get or {}).get("parameters", []):
            found.append((template, parameter["name"], parameter["in"]))
    assert len({template for template, _, _ in found}) >= 10, found
    return found


def rest_request(template: str, name: str, where: str, value: str) -> tuple[str, dict[str, str]]:
    """The path and query of a GET with `value` in parameter `name`, other path parts plain."""
    path, params = template, {}
    if where == "path":
        path = path.replace(f"{{{name}}}", quote(value, safe=""))
    else:
        params[name] = value
    while "{" in path:  # any other path parameter
        start = path.index("{")
        path = path[:start] + "code-reviewer" + path[path.index("}", start) + 1 :]
    return path, params


@pytest.mark.parametrize("shape", SHAPES)
def test_deep_nesting_in_rest_parameters(live: Live, shape: str) -> None:
    before = fingerprint(live.engine)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for template, name, where in rest_parameters(live):
            path, params = rest_request(template, name, where, nested(shape, 300))
            response = client.get(path, params=params)
            assert not problems_of(response.status_code, response.text), (path, name)
            assert response.status_code in (200, 400, 404, 422), (path, name, response.text)
    assert fingerprint(live.engine) == before


EVENT_FIELDS = (
    "event_id", "kind", "name", "task_id", "parent_id", "project_id", "timestamp",
    "finished_at", "status", "duration_seconds", "cost_usd", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_creation_tokens", "model", "error_message", "source",
)  # fmt: skip
TASK_FIELDS = ("prompt", "agent", "project_id", "task_id", "timeout")


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", SHAPES)
def test_deep_nesting_in_event_bodies(live: Live, shape: str, depth: int) -> None:
    before = fingerprint(live.engine)
    deep = nested(shape, depth)
    event = json.dumps(wire_event())
    bodies = [
        f'{{"events": {deep}}}',
        f'{{"events": [{deep}]}}',
        f'{{"events": [{event}, {deep}]}}',
    ]
    for key in EVENT_FIELDS:
        bodies.append(json.dumps({"events": [{**wire_event(), key: "@"}]}).replace('"@"', deep))
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for body in bodies:
            response = client.post("/v1/events", content=body.encode(), headers=JSON_TYPE)
            # Deeper than the decoder goes: malformed (400); else events that are invalid (422).
            assert_refused(live, response, before, status=400 if depth > 1_000 else 422)


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", SHAPES)
def test_deep_nesting_in_task_bodies(live: Live, fake: FakeClaude, shape: str, depth: int) -> None:
    before = fingerprint(live.engine)
    deep = nested(shape, depth)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for key in TASK_FIELDS:
            body = json.dumps({"prompt": "Review src/", key: "@"}).replace('"@"', deep)
            response = client.post("/v1/task", content=body.encode(), headers=JSON_TYPE)
            assert_refused(live, response, before, status=400 if depth > 1_000 else 422)
    assert fake.calls() == []


# ---- NUL in every string field -----------------------------------------------------------------

NUL = "a\x00b"


# Problems these tests found that are being fixed elsewhere, per database: case -> pending fix.
# A case that no longer fails fails its test until it is removed from here.
PENDING_NUL_FIXES: dict[str, dict[str, str]] = {}


def fresh_connections(live: Live) -> httpx.Client:
    """A client opening a connection per request: after a 500 the server drops the connection,
    which would fail the next case instead."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=live.url, timeout=30, limits=no_reuse)


def judge_cases(live: Live, found: dict[str, list[str]], cases: list[str]) -> None:
    """Fail on the problems of any of `cases` but those of pending fixes; xfail, naming the
    fixes, when only those remain; fail when a pending case passes (so its entry is removed)."""
    pending = {
        case: fix
        for case, fix in PENDING_NUL_FIXES.get(live.engine.dialect.name, {}).items()
        if case in cases
    }
    unexpected = {case: problems for case, problems in found.items() if case not in pending}
    assert unexpected == {}
    fixed = sorted(case for case in pending if case not in found)
    assert fixed == [], "fixed now: remove these from PENDING_NUL_FIXES"
    if found:
        pytest.xfail("; ".join(sorted({pending[case] for case in found})))


def test_nul_in_every_rest_parameter(live: Live) -> None:
    before = fingerprint(live.engine)
    found: dict[str, list[str]] = {}
    parameters = rest_parameters(live)
    labels = [f"GET {template} {name}" for template, name, _ in parameters]
    with fresh_connections(live) as client:
        for (template, name, where), label in zip(parameters, labels, strict=True):
            path, params = rest_request(template, name, where, NUL)
            response = client.get(path, params=params)
            problems = problems_of(response.status_code, response.text)
            if response.status_code not in (200, 400, 404, 422):
                problems.append(f"answered {response.status_code}")
            if problems:
                found[label] = problems
    assert fingerprint(live.engine) == before
    judge_cases(live, found, labels)


# A value of each scalar the schema uses; a new scalar fails the test until it is given one.
SCALAR_SAMPLES: dict[str, Any] = {
    "String": "x",
    "ID": "x",
    "Int": 1,
    "Long": 1,
    "Float": 1.0,
    "Boolean": True,
    "Date": "2026-05-01",
    "DateTime": "2026-05-01T10:00:00+00:00",
    "UUID": "6f1c1f5e-8a2e-4a53-9b8a-1f0e6c1d2b3a",
}


def sample(type_: graphql.GraphQLInputType) -> Any:
    """A valid value of an input type: required input fields filled, optional ones left out."""
    named = graphql.get_nullable_type(type_)
    if isinstance(named, graphql.GraphQLList):
        return [sample(named.of_type)]
    if isinstance(named, graphql.GraphQLEnumType):
        return next(iter(named.values))
    if isinstance(named, graphql.GraphQLInputObjectType):
        return {
            name: sample(input_field.type)
            for name, input_field in named.fields.items()
            if graphql.is_required_input_field(input_field)
        }
    assert isinstance(named, graphql.GraphQLScalarType)
    return SCALAR_SAMPLES[named.name]


def is_text(type_: graphql.GraphQLInputType) -> bool:
    """Whether values of `type_` (lists unwrapped) are sent as strings: String, dates, UUIDs."""
    named = graphql.get_named_type(type_)
    return isinstance(named, graphql.GraphQLScalarType) and isinstance(
        SCALAR_SAMPLES[named.name], str
    )


def with_nul(type_: graphql.GraphQLInputType) -> Iterator[Any]:
    """Values of `type_` with NUL in one string, each string field of an input object in turn."""
    named = graphql.get_nullable_type(type_)
    if isinstance(named, graphql.GraphQLList):
        yield from ([value] for value in with_nul(named.of_type))
    elif isinstance(named, graphql.GraphQLInputObjectType):
        for name, input_field in named.fields.items():
            for value in with_nul(input_field.type):
                yield {**sample(named), name: value}
    elif is_text(named):
        yield NUL


@dataclass(frozen=True)
class GraphQLCase:
    label: str
    query: str
    variables: dict[str, Any]
    mutation: bool


def graphql_nul_cases() -> list[GraphQLCase]:
    """For every root field, every argument holding text: a request with NUL in it, the other
    required arguments given valid values."""
    from claude_api.graph.schema import build_schema

    schema = graphql.build_schema(build_schema().as_str())
    cases = []
    for root in (schema.query_type, schema.mutation_type):
        assert root is not None
        for field_name, root_field in root.fields.items():
            returned = graphql.get_named_type(root_field.type)
            selection = "" if graphql.is_leaf_type(returned) else " { __typename }"
            for target, argument in root_field.args.items():
                for value in with_nul(argument.type):
                    used = {
                        name: arg
                        for name, arg in root_field.args.items()
                        if name == target or graphql.is_required_argument(arg)
                    }
                    definitions = ", ".join(f"${name}: {arg.type}" for name, arg in used.items())
                    arguments = ", ".join(f"{name}: ${name}" for name in used)
                    operation = "mutation" if root is schema.mutation_type else "query"
                    query = (
                        f"{operation} ({definitions}) {{ {field_name}({arguments}){selection} }}"
                    )
                    variables = {name: sample(arg.type) for name, arg in used.items()}
                    variables[target] = value
                    label = f"{field_name}({target}: {json.dumps(value)})"
                    cases.append(GraphQLCase(label, query, variables, operation == "mutation"))
    return cases


def test_nul_in_every_graphql_argument(live: Live) -> None:
    cases = graphql_nul_cases()
    assert len({case.label.split("(")[0] for case in cases}) >= 14
    found: dict[str, list[str]] = {}
    with fresh_connections(live) as client:
        for case in cases:
            before = fingerprint(live.engine)
            response = client.post(
                "/graphql", json={"query": case.query, "variables": case.variables}
            )
            problems = problems_of(response.status_code, response.text)
            problems += graphql_error_codes(response.text)
            changed = fingerprint(live.engine) != before
            if changed and (not case.mutation or rejected_graphql(response.text)):
                problems.append("a read or a rejected mutation changed the data")
            if problems:
                found[case.label] = problems
    judge_cases(live, found, [case.label for case in cases])


@pytest.mark.parametrize("key", ["prompt", "agent", "project_id", "task_id"])
def test_nul_in_every_task_field(live: Live, fake: FakeClaude, key: str) -> None:
    """Nothing runs: a NUL cannot be passed to a process, nor stored on PostgreSQL."""
    before = fingerprint(live.engine)
    body = {"prompt": "Review src/", key: NUL}
    response = httpx.post(f"{live.url}/v1/task", json=body, timeout=30)
    assert_refused(live, response, before, status=422)
    assert key in {error["field"] for error in response.json()["errors"]}
    assert fake.calls() == []


# A valid body of each POST route; a new route fails the test below until it has one here.
VALID_BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "/v1/events": wire_event,
    "/v1/task": lambda: {"prompt": "Review src/", "agent": "planner"},
    "/v1/budgets": lambda: {"period": "day", "kind": "agent", "name": "planner", "usd": 5.0},
    "/v1/alerts": lambda: {
        "metric": "failure_rate",
        "threshold": 0.5,
        "window_seconds": 3600,
        "kind": "agent",
        "name": "planner",
    },
}


def string_properties(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """The properties of a JSON body schema that may hold a string (refs and oneOf followed)."""

    def resolved(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return resolved(document["components"]["schemas"][ref.rsplit("/", 1)[1]]) if ref else node

    def is_string(node: dict[str, Any]) -> bool:
        node = resolved(node)
        return node.get("type") == "string" or any(
            is_string(option) for option in node.get("anyOf", []) + node.get("oneOf", [])
        )

    schema = resolved(schema)
    if "oneOf" in schema:  # one event or a batch: the event's own fields
        schema = resolved(schema["oneOf"][0])
    return [name for name, node in schema["properties"].items() if is_string(node)]


def test_nul_in_every_string_field_of_every_post_body(live: Live, fake: FakeClaude) -> None:
    """Every string field of every documented POST body, in turn: never a 5xx; a refusal names
    the field and changes nothing."""
    document = httpx.get(f"{live.url}/openapi.json", timeout=30).json()
    posts = {
        path: operations["post"]["requestBody"]["content"]["application/json"]["schema"]
        for path, operations in document["paths"].items()
        if "post" in operations
    }
    assert set(posts) == set(VALID_BODIES)
    found = []
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for path, schema in posts.items():
            fields = string_properties(schema, document)
            assert fields, path
            for name in fields:
                before = fingerprint(live.engine)
                response = client.post(path, json={**VALID_BODIES[path](), name: NUL})
                problems = problems_of(response.status_code, response.text)
                if 400 <= response.status_code < 500:
                    if name not in response.text:
                        problems.append("the refusal does not name the field")
                    if fingerprint(live.engine) != before:
                        problems.append("a refused request changed the data")
                if problems:
                    found.append(f"{path} {name}: {problems}: {response.text[:200]}")
    assert found == []
    assert all("\x00" not in call["prompt"] for call in fake.calls())
