"""The REST GETs and /openapi.json, in-process over ASGI on SQLite and PostgreSQL: each answer
equals the query layer's on the same data, bad input is a 400 naming the parameter, and every
body conforms to the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from claude_api.config import Settings
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models import queries
from claude_api.models.filters import LeaderboardMetric, Period, UsageFilter
from claude_api.server.app import create_app
from claude_api.server.openapi import openapi_document
from claude_api.server.rest import operations, rest_routes
from claude_api.server.services import Services
from claude_api.tracking import Tracker
from tests import expected
from tests.factories import BASE_TIME, add_events, make_event

HOUR = timedelta(hours=1)
SCHEMAS = "#/components/schemas/"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(operations())


@pytest.fixture
def client(engine: Engine, tracker: Tracker, document: dict[str, Any]) -> Iterator[Client]:
    app = Starlette(routes=rest_routes())
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    app.state.services = Services(settings=settings, engine=engine, tracker=tracker)
    with TestClient(app) as http:
        yield Client(http, engine, document)


class Client:
    """GETs that check the status and that the body conforms to the documented schema."""

    def __init__(self, http: TestClient, engine: Engine, document: dict[str, Any]) -> None:
        self.http, self.engine, self.document = http, engine, document

    def get(self, url: str, status: int = 200) -> Any:
        response = self.http.get(url)
        assert response.status_code == status, (url, response.text)
        body = response.json()
        schema = self.document["paths"][_template(self.document, url)]["get"]["responses"]
        documented = schema[str(status)]["content"]["application/json"]["schema"]
        problems = violations(body, documented, self.document)
        assert not problems, (url, problems)
        return body

    def direct(self, function: Callable[..., Any], **arguments: Any) -> Any:
        """The query layer's answer, as the JSON the REST surface should send."""
        with Session(self.engine) as session:
            return orjson.loads(orjson.dumps(function(session, **arguments)))


def _template(document: dict[str, Any], url: str) -> str:
    path = url.split("?", 1)[0]
    for template in document["paths"]:
        if re.fullmatch(re.sub(r"\{\w+\}", ".+", template), path):
            return template
    raise AssertionError(f"no documented path matches {url}")


def violations(value: Any, schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """How `value` breaks `schema` (the subset of JSON Schema pydantic writes); undocumented
    object keys count, so a body cannot carry more than the document says."""
    return _violations(value, schema, document, "$")


_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "integer": int, "number": (int, float),
    "boolean": bool, "null": type(None),
}  # fmt: skip


def _violations(value: Any, schema: dict[str, Any], document: dict[str, Any], at: str) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(SCHEMAS)
        return _violations(value, document["components"]["schemas"][name], document, at)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            fits = [not _violations(value, option, document, at) for option in schema[key]]
            return [] if any(fits) else [f"{at}: {value!r} fits no option of {key}"]
    kind = schema.get("type")
    if kind is not None and (
        not isinstance(value, _TYPES[kind]) or (isinstance(value, bool) and kind != "boolean")
    ):
        return [f"{at}: {value!r} is not of type {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {schema['enum']}"]
    if schema.get("format") == "date-time" and datetime.fromisoformat(value).utcoffset() is None:
        return [f"{at}: {value!r} has no offset"]
    problems = []
    if kind == "object":
        properties = schema.get("properties", {})
        problems += [f"{at}: lacks {key}" for key in schema.get("required", []) if key not in value]
        problems += [f"{at}: undocumented {key}" for key in value if key not in properties]
        for key, item in value.items():
            if key in properties:
                problems += _violations(item, properties[key], document, f"{at}.{key}")
    if kind == "array":
        for index, item in enumerate(value):
            problems += _violations(item, schema["items"], document, f"{at}[{index}]")
    return problems


def dataset() -> list[UsageEvent]:
    """Two agents and two skills over a few days, in two projects, some failed or running."""
    events = []
    for i in range(8):
        failed = i % 4 == 3
        events.append(
            make_event(
                name="code-reviewer",
                task_id=f"task-{i % 3}",
                timestamp=BASE_TIME + i * 7 * HOUR,
                duration_seconds=10.0 + i,
                cost_usd=0.1 * (i + 1),
                input_tokens=100 * (i + 1),
                project_id="alpha" if i % 2 else "beta",
                status=Status.FAILED if failed else Status.COMPLETED,
                error_message="timeout" if failed else None,
            )
        )
    events += [
        make_event(name="planner", task_id="task-9", timestamp=BASE_TIME - 30 * HOUR),
        make_event(name="planner", task_id="task-9", timestamp=BASE_TIME - 29 * HOUR),
        make_event(
            name="planner", task_id="task-1", timestamp=BASE_TIME + HOUR, status=Status.RUNNING
        ),
        make_event(name="team/lead", task_id="task-2", timestamp=BASE_TIME + 2 * HOUR),
        make_event(kind="skill", name="pdf", task_id="task-1", timestamp=BASE_TIME + HOUR),
        make_event(
            kind="skill",
            name="pdf",
            task_id="task-2",
            timestamp=BASE_TIME + 50 * HOUR,
            cost_usd=2.0,
            status=Status.FAILED,
            error_message="bad file",
        ),
        make_event(kind="skill", name="xlsx", task_id="task-9", timestamp=BASE_TIME - 28 * HOUR),
    ]
    return events


@pytest.fixture
def stored(engine: Engine) -> list[UsageEvent]:
    events = dataset()
    add_events(engine, *events)
    return events


def assert_totals(body: dict[str, Any], events: list[UsageEvent]) -> None:
    for name, wanted in expected.totals(events).items():
        assert body[name] == (wanted if wanted is None else pytest.approx(wanted)), name


def test_analytics_answers_like_usage_stats(client: Client, stored: list[UsageEvent]) -> None:
    body = client.get("/v1/agents/code-reviewer/analytics")
    scope = UsageFilter(kind=Kind.AGENT, name="code-reviewer")
    assert body == client.direct(queries.usage_stats, filter=scope)
    reviewer = [e for e in stored if e.name == "code-reviewer"]
    assert_totals(body, reviewer)
    assert body["top_errors"] == [
        {"kind": "agent", "name": "code-reviewer", "error_message": "timeout", "count": 2}
    ]

    url = "/v1/agents/code-reviewer/analytics?project=alpha&status=failed&top_errors=0"
    scope = scope.replace(project_id="alpha", status=Status.FAILED)
    body = client.get(url)
    assert body == client.direct(queries.usage_stats, filter=scope, top_errors=0)
    assert_totals(body, [e for e in reviewer if e.project_id == "alpha" and e.status == "failed"])

    # since/until without an offset are local times in tz; a date is its local midnight.
    body = client.get(
        "/v1/skills/pdf/analytics?since=2026-05-01T12:00&until=2026-05-04&model=claude-sonnet-4-5"
    )
    window = UsageFilter(
        kind=Kind.SKILL,
        name="pdf",
        model="claude-sonnet-4-5",
        since=datetime(2026, 5, 1, 12, tzinfo=UTC),
        until=datetime(2026, 5, 4, tzinfo=UTC),
    )
    assert body == client.direct(queries.usage_stats, filter=window)
    assert_totals(body, [e for e in stored if e.name == "pdf" and e.timestamp >= window.since])

    body = client.get("/v1/agents/team%2Flead/analytics")
    assert (body["name"], body["invocations"]) == ("team/lead", 1)


def _with_buckets(history: dict[str, Any]) -> dict[str, Any]:
    """A history of the query layer, which holds its buckets as columns (`series`), as REST
    sends it: an object per bucket."""
    series = history.pop("series")
    rows = zip(*series.values(), strict=True)
    return history | {"buckets": [dict(zip(series, row, strict=True)) for row in rows]}


def test_history_answers_like_usage_by_period(client: Client, stored: list[UsageEvent]) -> None:
    url = "/v1/agents/code-reviewer/history?period=week&since=2026-04-20&until=2026-05-11"
    paris = ZoneInfo("Europe/Paris")
    body = client.get(f"{url}&tz=Europe/Paris&project=beta")
    scope = UsageFilter(
        kind=Kind.AGENT,
        name="code-reviewer",
        project_id="beta",
        since=datetime(2026, 4, 20, tzinfo=paris),
        until=datetime(2026, 5, 11, tzinfo=paris),
        tz="Europe/Paris",
    )
    assert body == _with_buckets(
        client.direct(queries.usage_by_period, filter=scope, period=Period.WEEK)
    )
    assert body["start_at"] == "2026-04-19T22:00:00+00:00"
    assert [bucket["period_start"] for bucket in body["buckets"]] == [
        "2026-04-20",
        "2026-04-27",
        "2026-05-04",
    ]
    assert [bucket["invocations"] for bucket in body["buckets"]] == [0, 4, 0]

    body = client.get("/v1/skills/pdf/history?since=2026-04-30T00:00:00%2B00:00&until=2026-05-04")
    scope = UsageFilter(
        kind=Kind.SKILL,
        name="pdf",
        since=datetime(2026, 4, 30, tzinfo=UTC),
        until=datetime(2026, 5, 4, tzinfo=UTC),
    )
    assert body == _with_buckets(
        client.direct(queries.usage_by_period, filter=scope, period=Period.DAY)
    )
    assert [bucket["invocations"] for bucket in body["buckets"]] == [0, 1, 0, 1]

    assert len(client.get("/v1/skills/pdf/history")["buckets"]) == 30  # default range


def test_leaderboard_answers_like_the_query_layer(client: Client, stored: list[UsageEvent]) -> None:
    body = client.get("/v1/agents/leaderboard")
    assert body == {
        "items": client.direct(queries.leaderboard, filter=UsageFilter(kind=Kind.AGENT))
    }
    assert [(e["name"], e["value"]) for e in body["items"]] == [
        ("code-reviewer", 8.0),
        ("planner", 3.0),
        ("team/lead", 1.0),
    ]

    body = client.get("/v1/agents/leaderboard?by=success-rate&min_invocations=3&since=2026-04-01")
    scope = UsageFilter(kind=Kind.AGENT, since=datetime(2026, 4, 1, tzinfo=UTC))
    entries = client.direct(
        queries.leaderboard, filter=scope, metric=LeaderboardMetric.SUCCESS_RATE, min_invocations=3
    )
    assert body == {"items": entries}
    assert [(e["name"], e["value"]) for e in body["items"]] == [
        ("planner", 1.0),
        ("code-reviewer", pytest.approx(6 / 8)),
    ]

    body = client.get("/v1/skills/leaderboard?by=cost&limit=1")
    assert body["items"] == [
        {
            "rank": 1,
            "kind": "skill",
            "name": "pdf",
            "metric": "cost",
            "value": 2.25,
            "invocations": 2,
            "unpriced_invocations": 0,
        }
    ]


def test_report_answers_like_usage_report(client: Client, stored: list[UsageEvent]) -> None:
    url = "/v1/analytics/report?period=week&date=2026-05-01&tz=America/New_York&kind=agent"
    body = client.get(f"{url}&top_failures=1")
    scope = UsageFilter(kind=Kind.AGENT, tz="America/New_York")
    report = client.direct(
        queries.usage_report, period=Period.WEEK, on=date(2026, 5, 1), filter=scope, top_failures=1
    )
    assert body == report
    assert body["skills"] == []
    assert_totals(body["totals"], [e for e in stored if e.kind is Kind.AGENT])

    body = client.get("/v1/analytics/report?date=2026-05-02&project=alpha")
    scope = UsageFilter(project_id="alpha")
    assert body == client.direct(
        queries.usage_report, period=Period.DAY, on=date(2026, 5, 2), filter=scope
    )
    assert body["totals"]["invocations"] == 2  # code-reviewer runs 3 and 5 start on May 2


def test_tasks_answer_like_the_query_layer(client: Client, stored: list[UsageEvent]) -> None:
    body = client.get("/v1/tasks?agent=planner")
    scope = UsageFilter(kind=Kind.AGENT, name="planner")
    assert body == client.direct(queries.list_tasks, filter=scope)
    assert [task["task_id"] for task in body["items"]] == ["task-1", "task-9"]

    body = client.get("/v1/tasks?skill=pdf&status=failed")
    assert [task["task_id"] for task in body["items"]] == ["task-2"]

    body = client.get("/v1/tasks/task-9")
    usage = client.direct(queries.list_task_usage, task_id="task-9")
    assert body == {"task_id": "task-9", "invocations": usage}
    wanted = sorted((e for e in stored if e.task_id == "task-9"), key=lambda e: e.timestamp)
    assert [row["event_id"] for row in body["invocations"]] == [str(e.event_id) for e in wanted]


def test_pages_walk_every_item_once(client: Client, stored: list[UsageEvent]) -> None:
    add_events(client.engine, *(make_event(name=f"agent-{i}") for i in range(5)))
    for url, function, scope in [
        ("/v1/agents?project=beta", queries.stats_by_name, UsageFilter(kind=Kind.AGENT)),
        ("/v1/agents?limit=2", queries.stats_by_name, UsageFilter(kind=Kind.AGENT)),
        ("/v1/skills?limit=1", queries.stats_by_name, UsageFilter(kind=Kind.SKILL)),
        ("/v1/tasks?limit=2", queries.list_tasks, UsageFilter()),
    ]:
        if "project" in url:
            scope = scope.replace(project_id="beta")
        first = client.get(url)
        page_size = int(url.rsplit("limit=", 1)[1]) if "limit=" in url else 50
        assert first == client.direct(function, filter=scope, limit=page_size)
        walked, body = list(first["items"]), first
        while body["has_next"]:
            body = client.get(f"{url}&after={body['next_cursor']}")
            assert 0 < len(body["items"]) <= page_size
            walked += body["items"]
        assert walked == client.direct(function, filter=scope, limit=1000)["items"]
    names = [item["name"] for item in client.get("/v1/agents?limit=1000")["items"]]
    assert names == sorted(
        {"code-reviewer", "planner", "team/lead"} | {f"agent-{i}" for i in range(5)}
    )


def test_unknown_names_are_404_with_close_names(client: Client, stored: list[UsageEvent]) -> None:
    body = client.get("/v1/agents/code-reviewr/analytics", status=404)
    assert body == {
        "message": "no agent named 'code-reviewr' has been recorded",
        "suggestions": ["code-reviewer"],
    }
    body = client.get("/v1/agents/pdf/history", status=404)  # a skill, not an agent
    assert "no agent named 'pdf'" in body["message"]
    assert body["suggestions"] == []
    body = client.get("/v1/skills/xls/analytics", status=404)
    assert body["suggestions"] == ["xlsx"]
    body = client.get("/v1/tasks/task-7", status=404)
    assert body["message"] == "no invocation of task 'task-7' has been recorded"
    # Known but quiet in the range: zero counts, not a 404.
    assert client.get("/v1/agents/planner/analytics?since=2027-01-01")["invocations"] == 0


BAD_REQUESTS = [
    ("/v1/agents/code-reviewer/history?period=year", "period", "must be one of day, week, month"),
    ("/v1/agents/code-reviewer/analytics?since=yesterday", "since", "ISO 8601"),
    ("/v1/agents?since=2026-05-01T10:00:00 02:00", "since", "%2B"),
    ("/v1/agents?until=2026-13-01", "until", "ISO 8601"),
    ("/v1/agents?since=0001-01-01T00:00:00%2B05:00", "since", "out of the supported date range"),
    ("/v1/agents?since=2026-05-02&until=2026-05-01", "since", "before until"),
    ("/v1/analytics/report?date=05/01/2026", "date", "YYYY-MM-DD"),
    ("/v1/agents?limit=-1", "limit", "from 1 to 1000"),
    ("/v1/agents/leaderboard?limit=101", "limit", "from 1 to 100"),
    ("/v1/agents?limit=ten", "limit", "must be an integer"),
    ("/v1/agents?limit=", "limit", "must be an integer"),
    ("/v1/agents/code-reviewer/analytics?top_errors=1.5", "top_errors", "integer"),
    ("/v1/agents/leaderboard?min_invocations=-3", "min_invocations", "from 0"),
    ("/v1/agents/leaderboard?by=cheapest", "by", "must be one of"),
    ("/v1/agents/code-reviewer/analytics?tz=Mars/Olympus", "tz", "unknown IANA time zone"),
    ("/v1/agents/code-reviewer/analytics?tz=", "tz", "unknown IANA time zone"),
    ("/v1/agents/code-reviewer/analytics?projet=alpha", "projet", "did you mean 'project'"),
    ("/v1/tasks/task-1?verbose=1", "verbose", "not a parameter"),
    ("/v1/agents?project=alpha&project=beta", "project", "more than once"),
    ("/v1/agents?project=", "project", "1 to 200 characters"),
    ("/v1/agents?model=a%00b", "model", "NUL"),
    ("/v1/agents/a%00b/analytics", "name", "NUL"),
    (f"/v1/agents/{'x' * 201}/analytics", "name", "1 to 200 characters"),
    (f"/v1/tasks/{'x' * 201}", "task_id", "1 to 200 characters"),
    ("/v1/agents?status=done", "status", "must be one of running, completed, failed"),
    ("/v1/analytics/report?kind=agents", "kind", "must be one of agent, skill"),
    ("/v1/analytics/report?since=2026-05-01", "since", "use date and period"),
    ("/v1/analytics/report?until=2026-05-01", "until", "use date and period"),
    ("/v1/analytics/report?date=0001-01-01&period=month", "date", "out of the supported"),
    ("/v1/tasks?agent=planner&skill=pdf", "skill", "cannot be combined with agent"),
    ("/v1/agents?after=not-a-cursor", "after", "not a cursor"),
]


def test_bad_requests_are_400_naming_the_parameter(
    client: Client, stored: list[UsageEvent]
) -> None:
    wrong = []
    for url, field, words in BAD_REQUESTS:
        body = client.get(url, status=400)
        fields = [error["field"] for error in body["errors"]]
        if (
            fields != [field]
            or words not in body["errors"][0]["message"]
            or words not in body["message"]
        ):
            wrong.append((url, body))
    assert not wrong
    cursor = client.get("/v1/agents?limit=1")["next_cursor"]
    body = client.get(f"/v1/tasks?after={cursor}", status=400)  # another listing's cursor
    assert body["errors"] == [{"field": "after", "message": "is not a cursor of this listing"}]


def test_every_problem_is_listed_at_once(client: Client) -> None:
    body = client.get("/v1/agents?projet=x&limit=ten&since=now&tz=Nowhere", status=400)
    assert [error["field"] for error in body["errors"]] == ["projet", "limit", "since", "tz"]


def test_the_document_describes_every_route(document: dict[str, Any]) -> None:
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    routed = set()
    app = create_app(Settings())  # every route of the real app, not only the REST shims
    for route in app.routes:
        if not isinstance(route, Route) or route.path == "/graphql":
            continue  # GraphQL is described by schema.graphql; static files by nothing
        if not route.include_in_schema:
            continue  # the dashboard's pages and the data version its pages poll
        path = re.sub(r"\{(\w+):path\}", r"{\1}", route.path)
        routed |= {(path, method.lower()) for method in route.methods or () if method != "HEAD"}
    assert routed == described
    assert document["openapi"].startswith("3.1.")
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_every_parameter_is_documented(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for operation in item.values():
            params = operation.get("parameters", [])
            in_path = {param["name"] for param in params if param["in"] == "path"}
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), path
            for param in params:
                assert set(param) == {"name", "in", "required", "description", "schema"}, param
                assert param["required"] is (param["in"] == "path")
                assert param["description"].strip()
            assert operation["responses"]["200"]["description"]
    stats = document["paths"]["/v1/agents/{name}/analytics"]["get"]["parameters"]
    status = next(param for param in stats if param["name"] == "status")
    assert status["schema"]["enum"] == ["running", "completed", "failed"]


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            assert "$defs" not in node
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    schemas = document["components"]["schemas"]
    assert refs and all(ref.startswith(SCHEMAS) for ref in refs)
    assert {ref.removeprefix(SCHEMAS) for ref in refs} <= set(schemas)
    assert {"UsageEvent", "UsageStats", "Report", "History", "TaskSummary"} <= set(schemas)
    assert set(schemas["Page_UsageStats_"]["required"]) == {"items", "next_cursor", "has_next"}


def test_the_document_is_served(client: Client, document: dict[str, Any]) -> None:
    assert client.http.get("/openapi.json").json() == orjson.loads(orjson.dumps(document))


def test_event_bodies_conform_to_the_document(document: dict[str, Any]) -> None:
    request = document["paths"]["/v1/events"]["post"]["requestBody"]
    schema = request["content"]["application/json"]["schema"]
    event = orjson.loads(make_event().model_dump_json())
    assert violations(event, schema, document) == []
    assert violations({"events": [event, event]}, schema, document) == []
    assert violations({"events": [event], "extra": 1}, schema, document) != []
