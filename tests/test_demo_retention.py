"""The demo stays within the raw-row retention the server purges with: a server started on it
purges nothing, then or in the week after, and the rollups' counts equal the raw rows'."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.config import Settings
from claude_api.models.db import make_engine
from claude_api.models.retention import purge, purged_before
from claude_api.server.app import create_app
from tests.live_server import serve

EVENTS = 3_000


def run_cli(*args: str, **env: str | None) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", **env})
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def raw_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return sum(
            connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("agent_usage", "skill_usage")
        )


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_server_started_on_the_demo_with_the_default_retention_purges_none_of_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("CLAUDE_API_RETENTION_DAYS", "CLAUDE_API_ROLLUP_RETENTION_DAYS"):
        monkeypatch.delenv(variable, raising=False)
    run_cli("demo", "--events", str(EVENTS), "--seed", "5", CLAUDE_API_DATABASE_URL=database_url)
    engine = make_engine(database_url)
    try:
        assert raw_rows(engine) == EVENTS
        settings = Settings(database_url=database_url)
        assert settings.retention_days == 90  # what `claude-api serve` purges with by default

        def purged() -> bool:
            with Session(engine) as session:
                return purged_before(session)[0] is not None

        with serve(create_app(settings, purge_delay=0)) as url:
            wait_until(purged)  # the server's first purge has run to its end
            assert raw_rows(engine) == EVENTS
            client = {"CLAUDE_API_URL": url, "CLAUDE_API_KEY": None}
            stats = json.loads(run_cli("agents", "stats", "--json", **client))
            export = tmp_path / "agents.jsonl"
            run_cli("analytics", "export", "--output", str(export), "--kind", "agent", **client)
        exported = Counter(json.loads(line)["name"] for line in export.read_text().splitlines())
        assert {agent["name"]: agent["invocations"] for agent in stats} == exported
        assert sum(exported.values()) > EVENTS / 2

        # The purges of the week after keep every event too; the day after that the oldest go.
        week_later = datetime.now(UTC) + timedelta(days=7)
        kept = purge(engine, raw_retention_days=90, rollup_retention_days=None, now=week_later)
        assert kept.total_rows == 0 and raw_rows(engine) == EVENTS
        day_later = week_later + timedelta(days=1)
        cut = purge(engine, raw_retention_days=90, rollup_retention_days=None, now=day_later)
        assert cut.agent_rows > 0
    finally:
        engine.dispose()


def test_the_demo_refuses_days_reaching_past_the_retention(sqlite_url: str) -> None:
    env = {"CLAUDE_API_DATABASE_URL": sqlite_url, "CLAUDE_API_RETENTION_DAYS": "30"}
    refused = CliRunner().invoke(app, ["demo", "--events", "10", "--days", "30"], env=env)
    assert refused.exit_code == 2
    assert "CLAUDE_API_RETENTION_DAYS=30" in refused.stderr
    assert "--days 29 or fewer" in refused.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # refused before writing
    accepted = CliRunner().invoke(app, ["demo", "--events", "10", "--days", "29"], env=env)
    assert accepted.exit_code == 0, accepted.stderr
    assert "keeps them in full until" in accepted.stderr
    forever = {**env, "CLAUDE_API_RETENTION_DAYS": "0"}
    long = CliRunner().invoke(app, ["demo", "--events", "10", "--days", "400"], env=forever)
    assert long.exit_code == 0, long.stderr
    assert "keeps them for good" in long.stderr
