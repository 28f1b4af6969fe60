"""Failures of the analytics commands read as one sentence on stderr, with exit code 1 (2 for
usage errors): unreachable server, refused key, unknown names with suggestions, bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from claude_api.config import Settings
from claude_api.server.app import create_app
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.cli_support import SURFACES, Cli, cli, database_url
from tests.factories import add_events, make_event
from tests.live_server import serve

__all__ = ["cli"]


def assert_sentence(result: Result, code: int, *fragments: str) -> None:
    """Exit `code`, nothing on stdout, and an error on stderr that holds every fragment."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def names(engine: Engine) -> None:
    add_events(
        engine,
        make_event(name="code-reviewer"),
        make_event(name="code-writer"),
        make_event(name="planner"),
        make_event(kind="skill", name="pdf"),
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [
        ["agents", "stats"],
        ["agents", "leaderboard"],
        ["skills", "history", "pdf"],
        ["analytics", "report"],
        ["analytics", "export", "--output", "{tmp}/out.csv"],
    ],
)
def test_an_unreachable_server_is_named(
    cli: Cli, command: list[str], tmp_path: pytest.TempPathFactory
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    # The export downloads from its streaming route; every other command asks GraphQL.
    endpoint = f"{url}/v1/invocations/export" if "export" in command else f"{url}/graphql"
    arguments = [part.format(tmp=tmp_path) for part in command]
    result = cli.run("in-process", *arguments, "--url", url)
    assert_sentence(result, 1, "cannot reach the claude-api server", endpoint)
    from_env = cli.run("http", *arguments, CLAUDE_API_URL=url)
    assert_sentence(from_env, 1, endpoint)


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize("surface", SURFACES)
def test_an_unknown_agent_suggests_the_closest_names(cli: Cli, surface: str) -> None:
    result = cli.run(surface, "agents", "stats", "code-reviwer")
    assert_sentence(
        result,
        1,
        "no agent named 'code-reviwer' has been recorded",
        "did you mean 'code-reviewer' or 'code-writer'?",
    )
    history = cli.run(surface, "agents", "history", "planer")
    assert_sentence(history, 1, "did you mean 'planner'?")
    skill = cli.run(surface, "skills", "stats", "pfd")
    assert_sentence(skill, 1, "no skill named 'pfd'", "did you mean 'pdf'?")


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize("surface", SURFACES)
def test_an_unknown_name_far_from_any_points_to_the_listing(cli: Cli, surface: str) -> None:
    result = cli.run(surface, "agents", "stats", "zzzz")
    assert_sentence(result, 1, "no agent named 'zzzz'", "`claude-api agents stats` lists")


def test_an_unknown_name_in_an_empty_database(cli: Cli) -> None:
    result = cli.run("in-process", "skills", "stats", "pdf")
    assert_sentence(result, 1, "no skill named 'pdf'", "no skill has been recorded yet")


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["agents", "history", "x", "--period", "year"], "--period"),
        (["analytics", "report", "--period", "quarter"], "--period"),
        (["analytics", "report", "--date", "2026-02-30"], "--date"),
        (["analytics", "report", "--date", "May 1st"], "--date"),
        (["agents", "stats", "--since", "2026-13-01"], "--since"),
        (["agents", "leaderboard", "--until", "tomorrow"], "--until"),
        (["agents", "stats", "--tz", "Mars/Olympus"], "--tz"),
        (["agents", "leaderboard", "--by", "speed"], "--by"),
        (["agents", "leaderboard", "--limit", "0"], "--limit"),
        (["analytics", "export", "--output", "/no/such/dir/x.csv"], "--output"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(
    cli: Cli, arguments: list[str], option: str
) -> None:
    result = cli.run("in-process", *arguments)
    assert_sentence(result, 2, option)


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize("surface", SURFACES)
def test_a_range_the_api_rejects_names_the_field(cli: Cli, surface: str) -> None:
    # A --since after --until is a usage error, told before anything is asked.
    result = cli.run(surface, "agents", "stats", "--since", "2026-05-02", "--until", "2026-05-01")
    assert_sentence(result, 2, "is after --until")
    history = cli.run(
        surface, "agents", "history", "planner", "--since", "1990-01-01", "--until", "2026-01-01"
    )
    assert_sentence(history, 1, "invalid --since")


def test_a_database_that_cannot_be_opened(cli: Cli) -> None:
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{closed_port()}/analytics"
    result = cli.run("in-process", "agents", "stats", CLAUDE_API_DATABASE_URL=url)
    assert_sentence(result, 1, "cannot open the database", "nobody:***@127.0.0.1")
    assert "secret" not in result.stderr


def test_a_url_that_is_not_a_server(cli: Cli) -> None:
    result = cli.run("in-process", "agents", "stats", "--url", "ftp://example.com")
    assert_sentence(result, 1, "must start with http:// or https://")
    missing = cli.run("in-process", "agents", "stats", "--url", f"{cli.url}/v1/nothing")
    assert_sentence(missing, 1, "no claude-api GraphQL endpoint", f"{cli.url}/v1/nothing/graphql")


def requiring_key(app: ASGIApp, key: str) -> ASGIApp:
    """`app` behind a gate that answers 401, with a GraphQL error body, without the bearer key."""

    async def gate(scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or ())
        if scope["type"] == "http" and headers.get(b"authorization") != f"Bearer {key}".encode():
            body = {"errors": [{"message": "missing or wrong API key"}]}
            await JSONResponse(body, status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return gate


@pytest.fixture
def gated_url(engine: Engine) -> Iterator[str]:
    settings = Settings(database_url=database_url(engine))
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    try:
        with serve(requiring_key(create_app(settings, services=services), "s3cret")) as url:
            yield url
    finally:
        tracker.close()


@pytest.mark.usefixtures("names")
def test_the_api_key_is_sent_as_a_bearer_token(cli: Cli, gated_url: str) -> None:
    refused = cli.run("http", "agents", "stats", CLAUDE_API_URL=gated_url)
    assert_sentence(refused, 1, f"the server at {gated_url}/graphql refused", "HTTP 401")
    assert "CLAUDE_API_KEY" in refused.stderr
    wrong = cli.run("http", "agents", "stats", CLAUDE_API_URL=gated_url, CLAUDE_API_KEY="nope")
    assert_sentence(wrong, 1, "HTTP 401")
    accepted = cli.run(
        "http", "agents", "stats", "--json", CLAUDE_API_URL=gated_url, CLAUDE_API_KEY="s3cret"
    )
    assert accepted.exit_code == 0, accepted.stderr
    assert "code-reviewer" in accepted.stdout


def test_error_text_is_not_read_as_markup(cli: Cli) -> None:
    result = cli.run("in-process", "agents", "stats", "[bold]x[/bold]")
    assert_sentence(result, 1, "no agent named '[bold]x[/bold]'")


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CLAUDE_API_RATE_LIMIT", "bogus", "CLAUDE_API_RATE_LIMIT: 'bogus' is not a rate"),
        ("CLAUDE_API_TIME_ZONES", "Mars/Olympus", "CLAUDE_API_TIME_ZONES: 'Mars/Olympus' is not"),
        ("CLAUDE_API_RETENTION_DAYS", "-3", "CLAUDE_API_RETENTION_DAYS: Input should be greater"),
    ],
)
def test_a_setting_that_cannot_be_is_named_in_a_sentence(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    """The installed `claude-api` with a CLAUDE_API_* variable set to what it cannot be: one
    sentence naming the variable, exit code 1, no traceback."""
    env = {key: text for key, text in os.environ.items() if not key.startswith("CLAUDE_API_")}
    env |= {"HOME": str(tmp_path), variable: value}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "claude-api"), "db", "status"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("CLAUDE_API_") == 1  # named once, not twice
