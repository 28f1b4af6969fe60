"""The export's stream from the query layer: every invocation exactly once, in the listing's
order, across batch boundaries (ties on an instant included), with the listing's filters; the
server's export endpoint (keys, projects, bad input) and the CLI through it."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.exports import COLUMNS, TEXT_COLUMNS, escape_formula
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import iter_invocation_rows, iter_invocations, list_invocations
from claude_api.server.export_routes import EXPORT_PATH
from tests.auth_support import add_two_projects, database_url, secured_server
from tests.factories import add_events, make_event, make_events

START = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def mixed(engine: Engine) -> list:
    # Three invocations per instant, agents and skills, so batches end inside a tie.
    events = [
        make_event(
            kind="skill" if i % 3 == 2 else "agent",
            name=f"name-{i % 4}",
            project_id=f"p{i % 2}",
            timestamp=START + timedelta(minutes=i // 3),
        )
        for i in range(47)
    ]
    add_events(engine, *events)
    return events


def paged(session: Session, scope: UsageFilter) -> list:
    items, after = [], None
    while True:
        page = list_invocations(session, filter=scope, limit=5, after=after)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        after = page.next_cursor


@pytest.mark.parametrize(
    "scope",
    [
        UsageFilter(),
        UsageFilter(kind="skill"),
        UsageFilter(project_id="p1", since=START + timedelta(minutes=2)),
        UsageFilter(name="name-1", until=START + timedelta(minutes=10)),
    ],
)
@pytest.mark.parametrize("batch", [1, 4, 7, 1000])
def test_the_stream_is_the_listing(engine: Engine, mixed: list, scope: UsageFilter, batch: int):
    with Session(engine) as session:
        streamed = list(iter_invocations(session, filter=scope, batch=batch))
        assert streamed == paged(session, scope)
    wanted = {
        event.event_id
        for event in mixed
        if (scope.kind is None or event.kind == scope.kind)
        and (scope.project_id is None or event.project_id == scope.project_id)
        and (scope.name is None or event.name == scope.name)
        and (scope.since is None or event.timestamp >= scope.since)
        and (scope.until is None or event.timestamp < scope.until)
    }
    assert [record.event_id for record in streamed if record.event_id in wanted] == [
        record.event_id for record in streamed
    ]
    assert {record.event_id for record in streamed} == wanted
    assert len(streamed) == len(wanted)
    order = [(r.timestamp, r.kind.value, r.event_id) for r in streamed]
    assert order == sorted(order)
    with Session(engine) as session:
        plain = [list(row) for row in iter_invocation_rows(session, filter=scope, batch=batch)]
    assert plain == [
        [
            value.value
            if isinstance(value, Enum)
            else value.isoformat()
            if isinstance(value, datetime)
            else str(value)
            if isinstance(value, UUID)
            else value
            for value in (getattr(record, column) for column in COLUMNS)
        ]
        for record in streamed
    ]


@pytest.mark.parametrize("batch", [1, 2, 3, 1000])
def test_the_invocations_of_an_instant_are_in_event_id_order(engine: Engine, batch: int) -> None:
    # Stored one by one, last event id first: the database's own order of an instant is the
    # reverse of the export's.
    ids = [UUID(int=(i + 1) << 64) for i in range(7)]
    for i, event_id in enumerate(reversed(ids)):
        instant = START + timedelta(minutes=1) if i < 5 else START + timedelta(minutes=i)
        add_events(engine, make_event(kind="agent", event_id=event_id, timestamp=instant))
    add_events(engine, make_event(kind="skill", timestamp=START + timedelta(minutes=1)))
    with Session(engine) as session:
        rows = list(iter_invocation_rows(session, batch=batch))
    exported = [(row[COLUMNS.index("timestamp")], row[0], row[2]) for row in rows]
    assert exported == sorted(exported)
    agents = [UUID(row[2]) for row in rows if row[0] == "agent"]
    assert agents == [*ids[2:], ids[1], ids[0]]


def as_exported(record: Any, *, escaped: bool) -> list[Any]:
    """A record of the listing as the export writes it, converted here in Python."""
    values = []
    for column in COLUMNS:
        value = getattr(record, column)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, UUID):
            value = str(value)
        elif escaped and column in TEXT_COLUMNS:
            value = escape_formula(value)
        values.append(value)
    return values


@pytest.mark.parametrize("escaped", [False, True])
def test_the_database_writes_the_cells_as_python_would(engine: Engine, escaped: bool) -> None:
    # Times with and without fractions of a second, ids of a parent, costs without a finite
    # short decimal, text a spreadsheet would run (each starting character), quotes, new
    # lines and characters beyond ASCII.
    texts = ["=SUM(A1)", "+1", "-2", "@cmd", "\tTAB", "\rCR", "a=b", 'é "q"\nline', "'"]
    parent = make_event(timestamp=START + timedelta(microseconds=1))
    events = [parent]
    for i, text in enumerate(texts):
        at = START + timedelta(seconds=i, microseconds=(i * 123_457) % 1_000_000)
        events.append(
            make_event(
                kind="skill" if i % 2 else "agent",
                name=text,
                task_id=text,
                project_id=text,
                model=text,
                source=text,
                parent_id=parent.event_id,
                status="failed",
                error_message=text,
                timestamp=at,
                finished_at=at + timedelta(seconds=1, microseconds=i),
                duration_seconds=1 / 3,
                cost_usd=0.1 + 0.2,
                cache_read_tokens=9_876_543_210,
            )
        )
    add_events(engine, *events)
    with Session(engine) as session:
        records = list(iter_invocations(session))
        rows = list(iter_invocation_rows(session, escape_formulas=escaped, batch=2))
    assert [list(row) for row in rows] == [as_exported(r, escaped=escaped) for r in records]
    assert len(rows) == len(events)
    if escaped:
        assert {row[COLUMNS.index("name")] for row in rows} >= {"'" + text for text in texts[:6]}


# ---- the server's export stream --------------------------------------------------------------


def test_the_endpoint_streams_a_projects_rows_to_its_key(engine: Engine) -> None:
    add_two_projects(engine)
    with Session(engine) as session:
        web = [
            str(r.event_id) for r in iter_invocations(session, filter=UsageFilter(project_id="web"))
        ]
    with secured_server(engine) as server:
        assert server.get(EXPORT_PATH).status_code == 401
        bound = server.key("read", project="web")
        answer = server.get(EXPORT_PATH, bound, format="jsonl")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in answer.text.splitlines()]
        assert [row["event_id"] for row in rows] == web
        assert list(rows[0]) == list(COLUMNS)
        assert server.get(EXPORT_PATH, bound, project="api").status_code == 403
        reader = server.key("read")
        assert server.get(EXPORT_PATH, reader, format="xml").status_code == 400
        assert (
            server.get(EXPORT_PATH, reader, since="2026-05-02", until="2026-05-01").status_code
            == 400
        )
        everything = server.get(EXPORT_PATH, reader)
        table = list(csv.DictReader(io.StringIO(everything.text)))
        with Session(engine) as session:
            assert [row["event_id"] for row in table] == [
                str(r.event_id) for r in iter_invocations(session)
            ]


def test_the_cli_exports_through_the_endpoint(engine: Engine, tmp_path: Path) -> None:
    # An error message on two lines and a formula-like name: a CSV row that spans lines.
    add_events(
        engine,
        *make_events(7, name="=cmd()", status="failed", error_message="first\nsecond"),
        *make_events(5, kind="skill", name="pdf"),
    )
    with secured_server(engine, auth="off") as server:
        for name in ("a.csv", "a.jsonl"):
            env = {"COLUMNS": "80", "CLAUDE_API_URL": server.url, "CLAUDE_API_KEY": None}
            remote = CliRunner().invoke(
                app, ["analytics", "export", "-o", str(tmp_path / name)], env=env
            )
            assert remote.exit_code == 0, remote.stderr
            assert "exported 12 invocations" in remote.stderr
            local_env = {
                **env,
                "CLAUDE_API_URL": None,
                "CLAUDE_API_DATABASE_URL": database_url(engine),
            }
            local = CliRunner().invoke(
                app, ["analytics", "export", "-o", str(tmp_path / f"local-{name}")], env=local_env
            )
            assert local.exit_code == 0, local.stderr
            assert (tmp_path / name).read_bytes() == (tmp_path / f"local-{name}").read_bytes()
        assert "'=cmd()" in (tmp_path / "a.csv").read_text()
