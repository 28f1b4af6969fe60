"""Running the `claude-api` analytics commands in tests, both ways on the same database: against
a real server on loopback (`--url`) and in-process, plus helpers to compare what they print
with the query layer."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import pytest
from click.testing import Result
from sqlalchemy import Engine
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.config import Settings
from claude_api.server.app import create_app
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.live_server import serve

SURFACES = ("http", "in-process")


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@dataclass
class Cli:
    """The CLI on one database: `run(surface, *args)` invokes it over HTTP or in-process."""

    engine: Engine
    url: str  # the live server's base URL

    def env(self, surface: str, **extra: str | None) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            "CLAUDE_API_DATABASE_URL": database_url(self.engine),
            "CLAUDE_API_URL": self.url if surface == "http" else None,
            "CLAUDE_API_KEY": None,
            "COLUMNS": "80",
        }
        env.update(extra)
        return env

    def run(self, surface: str, *args: str, **env: str | None) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env(surface, **env))

    def ok(self, surface: str, *args: str) -> Result:
        """Run and expect success."""
        result = self.run(surface, *args)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, surface: str, *args: str) -> Any:
        return json.loads(self.ok(surface, *args, "--json").stdout)

    def both(self, *args: str) -> str:
        """The stdout of the command, which must be the same over HTTP and in-process."""
        printed = {surface: self.ok(surface, *args).stdout for surface in SURFACES}
        assert printed["http"] == printed["in-process"]
        return printed["http"]

    def both_json(self, *args: str) -> Any:
        answers = {surface: self.json(surface, *args) for surface in SURFACES}
        assert answers["http"] == answers["in-process"]
        return answers["http"]


@pytest.fixture
def cli(engine: Engine) -> Iterator[Cli]:
    """The CLI on `engine`'s database, with a live server on it for the HTTP surface."""
    settings = Settings(database_url=database_url(engine))
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    try:
        with serve(create_app(settings, services=services)) as url:
            yield Cli(engine, url)
    finally:
        tracker.close()


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def assert_matches(graph: Any, result: Any, path: str = "") -> None:
    """A GraphQL answer (camelCase JSON) holds the same values as a query-layer result: every
    key it has, at any depth, equals the result's field of that name."""
    if dataclasses.is_dataclass(result):
        assert isinstance(graph, Mapping), path
        for key, value in graph.items():
            assert_matches(value, getattr(result, camel_to_snake(key)), f"{path}.{key}")
    elif isinstance(result, list | tuple):
        assert isinstance(graph, list) and len(graph) == len(result), path
        for index, (got, wanted) in enumerate(zip(graph, result, strict=True)):
            assert_matches(got, wanted, f"{path}[{index}]")
    elif result is None:
        assert graph is None, path
    elif isinstance(result, Enum):
        assert graph == result.name, path
    elif isinstance(result, datetime):
        assert datetime.fromisoformat(graph) == result, path
    elif isinstance(result, date):
        assert date.fromisoformat(graph) == result, path
    elif isinstance(result, UUID):
        assert UUID(graph) == result, path
    elif isinstance(result, float):
        assert graph == pytest.approx(result, rel=1e-9), path
    else:
        assert graph == result, path


def table_row(printed: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first` (cells are 2+ spaces apart)."""
    for line in printed.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{printed}")


def assert_fits(printed: str, width: int = 80) -> None:
    """Every line fits in `width` columns."""
    assert max(map(len, printed.splitlines()), default=0) <= width, printed
