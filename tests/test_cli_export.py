"""`claude-api analytics export`: every invocation to CSV or JSON Lines, page by page, the same
over HTTP and in-process; formulas escaped; a failed export leaves no file behind."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claude_api.client import analytics, output
from claude_api.client.export import EXPORT_COLUMNS, atomic_file, escape_formula
from claude_api.config import Settings
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import InvocationRecord, list_invocations
from claude_api.server.app import create_app
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.cli_support import SURFACES, Cli, cli, database_url
from tests.factories import BASE_TIME, add_events, make_event
from tests.live_server import serve

__all__ = ["cli"]

CLAUDE_API = Path(sys.executable).parent / "claude-api"
FORMULAS = ["=SUM(A1:A9)", "+1+2", "-2+3", "@cmd", "\tTAB", "\rCR"]


def events() -> list[UsageEvent]:
    """Agents and skills, some at the same instant, one running, every field filled somewhere."""
    made = []
    for i in range(7):
        at = BASE_TIME + timedelta(minutes=i // 2)
        agent = make_event(timestamp=at, name=f"agent-{i % 3}", project_id="web", task_id=f"t{i}")
        made.append(agent)
        made.append(
            make_event(
                kind="skill",
                name="pdf",
                parent_id=agent.event_id,
                timestamp=at,
                task_id=f"t{i}",
                status=Status.FAILED,
                error_message='bad "file", line 2\nsecond line',
            )
        )
    made.append(make_event(timestamp=BASE_TIME + timedelta(hours=1), status=Status.RUNNING))
    return made


def cached_events() -> list[UsageEvent]:
    """Invocations with cache tokens past 2^32, computed and unpriced costs, several sources."""
    return [
        make_event(
            timestamp=BASE_TIME + timedelta(seconds=1),
            cache_read_tokens=9_876_543_210,
            cache_creation_tokens=123_456,
            cost_usd=1.5,
            cost_source="computed",
            model="claude-opus-4-5",
            source="transcript-import",
        ),
        make_event(
            kind="skill",
            name="xlsx",
            timestamp=BASE_TIME + timedelta(seconds=2),
            cost_usd=None,
            cost_source="unpriced",
            input_tokens=3_000_000_000,
            cache_read_tokens=0,
            model="some-local-model",
            source="claude-code-hook",
        ),
        make_event(
            timestamp=BASE_TIME + timedelta(seconds=3),
            cost_usd=None,
            input_tokens=None,
            output_tokens=None,
            model=None,
            source="api",
        ),
    ]


@pytest.mark.usefixtures("small_pages")
@pytest.mark.parametrize("surface", SURFACES)
def test_export_has_cache_tokens_model_cost_source_and_source(
    cli: Cli, engine: Engine, tmp_path: Path, surface: str
) -> None:
    made = cached_events()
    add_events(engine, *made)
    columns = (
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "model",
        "cost_usd", "cost_source", "source",
    )  # fmt: skip

    def wanted(event: UsageEvent) -> dict[str, Any]:
        values = {column: getattr(event, column) for column in columns}
        source = event.cost_source
        return values | {"cost_source": None if source is None else source.value}

    cli.ok(surface, "analytics", "export", "-o", str(tmp_path / "rows.jsonl"))
    lines = (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    exported = [json.loads(line) for line in lines]
    assert [{column: row[column] for column in columns} for row in exported] == [
        wanted(event) for event in made
    ]
    cli.ok(surface, "analytics", "export", "-o", str(tmp_path / "rows.csv"))
    assert [
        {column: row[column] for column in columns} for row in read_csv(tmp_path / "rows.csv")
    ] == [csv_text(wanted(event)) for event in made]


@pytest.fixture
def stored(engine: Engine) -> list[UsageEvent]:
    made = events()
    add_events(engine, *made)
    return made


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 3 rows, so a handful of rows takes several requests."""
    monkeypatch.setattr(analytics, "EXPORT_PAGE_SIZE", 3)


def expected_rows(engine: Engine, filter: UsageFilter = UsageFilter()) -> list[dict[str, Any]]:
    """The query layer's rows, in the export's columns and text."""
    rows, after = [], None
    with Session(engine) as session:
        while True:
            page = list_invocations(session, filter=filter, limit=1000, after=after)
            rows += [as_exported(item) for item in page.items]
            if not page.has_next:
                return rows
            after = page.next_cursor


def as_exported(item: InvocationRecord) -> dict[str, Any]:
    def text(value: Any) -> Any:
        return value.isoformat() if hasattr(value, "isoformat") else value

    return (
        {
            column: None if getattr(item, column) is None else text(getattr(item, column))
            for column in EXPORT_COLUMNS.values()
        }
        | {"kind": item.kind.value, "status": item.status.value, "event_id": str(item.event_id)}
        | {"parent_id": None if item.parent_id is None else str(item.parent_id)}
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def csv_text(row: dict[str, Any]) -> dict[str, str]:
    """A row as CSV cells read back: empty for None, numbers as Python writes them."""
    return {key: "" if value is None else str(value) for key, value in row.items()}


@pytest.mark.usefixtures("stored", "small_pages")
@pytest.mark.parametrize("kind", ["all", "agent", "skill"])
def test_csv_export_has_every_row_the_same_both_ways(
    cli: Cli, engine: Engine, tmp_path: Path, kind: str
) -> None:
    scope = UsageFilter(kind=None if kind == "all" else Kind(kind))
    wanted = [csv_text(row) for row in expected_rows(engine, scope)]
    written = {}
    for surface in SURFACES:
        path = tmp_path / f"{surface}.csv"
        result = cli.ok(surface, "analytics", "export", "--output", str(path), "--kind", kind)
        assert result.stdout == ""
        assert result.stderr.strip() == f"exported {len(wanted)} invocations to {path}"
        written[surface] = path.read_bytes()
        assert read_csv(path) == wanted
    assert written["http"] == written["in-process"]
    assert list(read_csv(tmp_path / "http.csv")[0]) == list(EXPORT_COLUMNS.values())


@pytest.mark.usefixtures("stored", "small_pages")
@pytest.mark.parametrize("surface", SURFACES)
def test_jsonl_export_from_the_file_name_or_the_flag(
    cli: Cli, engine: Engine, tmp_path: Path, surface: str
) -> None:
    wanted = expected_rows(engine, UsageFilter(project_id="web", since=BASE_TIME))
    for path, options in (
        (tmp_path / "rows.jsonl", []),
        (tmp_path / "rows.txt", ["--format", "jsonl"]),
    ):
        cli.ok(
            surface, "analytics", "export", "-o", str(path), "--project", "web",
            "--since", BASE_TIME.isoformat(), *options,
        )  # fmt: skip
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == wanted


@pytest.mark.usefixtures("small_pages")
@pytest.mark.parametrize("surface", SURFACES)
def test_formulas_are_escaped_in_csv_only(
    cli: Cli, engine: Engine, tmp_path: Path, surface: str
) -> None:
    add_events(
        engine,
        *(
            make_event(
                name=formula,
                task_id=formula,
                project_id=formula,
                model=formula,
                status=Status.FAILED,
                error_message=formula,
                timestamp=BASE_TIME + timedelta(seconds=i),
            )
            for i, formula in enumerate(FORMULAS)
        ),
    )
    cli.ok(surface, "analytics", "export", "-o", str(tmp_path / "x.csv"))
    rows = read_csv(tmp_path / "x.csv")
    for row, formula in zip(rows, FORMULAS, strict=True):
        for column in ("name", "task_id", "project_id", "model", "error_message"):
            assert row[column] == "'" + formula, column
    cli.ok(surface, "analytics", "export", "-o", str(tmp_path / "x.jsonl"))
    lines = (tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["name"] for line in lines] == FORMULAS


def test_escape_formula_leaves_other_cells_alone() -> None:
    assert escape_formula("code-reviewer") == "code-reviewer"
    assert escape_formula("a=b") == "a=b"
    assert escape_formula("") == ""
    assert escape_formula(-1.5) == -1.5
    assert escape_formula(None) is None
    assert [escape_formula(f) for f in FORMULAS] == ["'" + f for f in FORMULAS]


def dying_after(app: ASGIApp, requests: int) -> ASGIApp:
    """`app` behind a proxy whose backend dies after `requests` GraphQL requests (502 from then)
    and in the middle of every export it streams (the connection cut after its first chunk)."""
    seen = 0

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal seen
        if scope["type"] == "http" and scope["path"] == "/v1/invocations/export":

            async def cut(message: Message) -> None:
                await send({**message, "more_body": True} if "body" in message else message)
                if message["type"] == "http.response.body":
                    raise ConnectionResetError("backend gone")

            await app(scope, receive, cut)
            return
        if scope["type"] == "http" and scope["path"] == "/graphql":
            seen += 1
            if seen > requests:
                await PlainTextResponse("backend gone", status_code=502)(scope, receive, send)
                return
        await app(scope, receive, send)

    return proxy


@pytest.fixture
def dying_url(engine: Engine) -> Iterator[str]:
    settings = Settings(database_url=database_url(engine))
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    try:
        with serve(dying_after(create_app(settings, services=services), 2)) as url:
            yield url
    finally:
        tracker.close()


@pytest.mark.usefixtures("stored", "small_pages")
def test_a_server_dying_midway_leaves_no_file(cli: Cli, dying_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "stats.csv"
    result = cli.run("http", "analytics", "export", "-o", str(target), CLAUDE_API_URL=dying_url)
    assert result.exit_code == 1
    assert f"the server at {dying_url}/v1/invocations/export stopped" in result.stderr
    assert list(folder.iterdir()) == []

    target.write_text("the previous export\n")
    again = cli.run("http", "analytics", "export", "-o", str(target), CLAUDE_API_URL=dying_url)
    assert again.exit_code == 1
    assert target.read_text() == "the previous export\n"
    assert list(folder.iterdir()) == [target]


@pytest.mark.usefixtures("stored", "small_pages")
def test_an_interrupted_export_leaves_no_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages: list[int] = []

    @contextmanager
    def interrupting_progress(
        total: int | None, *, description: str, enabled: bool
    ) -> Iterator[Callable[[int], None]]:
        def advance(rows: int) -> None:
            pages.append(rows)
            if len(pages) == 2:
                raise KeyboardInterrupt  # Ctrl-C once the second page is written

        yield advance

    monkeypatch.setattr(output, "progress", interrupting_progress)
    folder = tmp_path / "exports"
    folder.mkdir()
    result = cli.run("in-process", "analytics", "export", "-o", str(folder / "x.csv"))
    assert result.exit_code in (1, 130) and pages == [3, 3]  # click: Abort, or 128 + SIGINT
    assert list(folder.iterdir()) == []


def test_atomic_file_replaces_the_target_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as file:
        file.write("half")
        raise RuntimeError("failed midway")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_file(target) as file:
        file.write("new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.usefixtures("stored")
def test_the_progress_bar_shows_only_on_a_terminal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = cli.ok("in-process", "analytics", "export", "-o", str(tmp_path / "a.csv"))
    assert quiet.stderr == f"exported 15 invocations to {tmp_path / 'a.csv'}\n"
    monkeypatch.setattr(output, "interactive", lambda: True)
    watched = cli.ok("in-process", "analytics", "export", "-o", str(tmp_path / "b.csv"))
    assert "exporting" in watched.stderr and "15/15" in watched.stderr
    assert watched.stdout == ""


@pytest.mark.usefixtures("stored")
def test_the_console_script_exports_and_answers(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CLAUDE_API_DATABASE_URL": database_url(engine),
        "COLUMNS": "80",
    }
    env.pop("CLAUDE_API_URL", None)
    target = tmp_path / "stats.csv"
    exported = subprocess.run(
        [CLAUDE_API, "analytics", "export", "--output", target, "--kind", "skill"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr == f"exported 7 invocations to {target}\n"  # no progress bar: no TTY
    assert len(read_csv(target)) == 7

    board = subprocess.run(
        [CLAUDE_API, "agents", "leaderboard", "--json", "--url", cli.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert board.returncode == 0, board.stderr
    assert [entry["name"] for entry in json.loads(board.stdout)] == [
        "agent-0", "agent-1", "agent-2", "code-reviewer"
    ]  # fmt: skip

    unknown = subprocess.run(
        [CLAUDE_API, "agents", "stats", "agent-9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert "did you mean 'agent-0', 'agent-1' or 'agent-2'?" in unknown.stderr
