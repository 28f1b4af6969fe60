"""`claude-api analytics report` mentions the budgets that cover its agents, skills and project
(spent ones first, said plainly) and the alerts firing on them, in its tables and in --json,
over HTTP and in-process, on SQLite and PostgreSQL; a key bound to a project sees its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.config import Settings
from claude_api.events import Status
from claude_api.models.alerts import Metric
from claude_api.models.alerts import add_rule as add_alert_rule
from claude_api.models.budgets import set_budget
from claude_api.models.db import make_engine, write_engine
from claude_api.server.alerting import AlertEvaluator
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.auth_support import Secured, secured_server
from tests.cli_support import SURFACES, Cli, assert_fits, database_url, table_row
from tests.cli_support import cli as cli  # the fixture
from tests.factories import add_events, make_event

SPENT_LINE = (
    "budget 'code-reviewer per day' of $1.00 is spent: $1.50 today "
    "(denies new subagents, skills and tasks)"
)


def _now_ish() -> datetime:
    """A moment of today (UTC) a few minutes back that stays in today, and in the alert rules'
    hour, for the test's few seconds."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(minutes=5), midnight + timedelta(microseconds=1))


def _budget(engine: Engine, **fields: Any) -> int:
    with Session(write_engine(engine)) as session:
        budget = set_budget(session, **fields).budget
        session.commit()
    return budget.id


def _rule(engine: Engine, **fields: Any) -> int:
    with Session(write_engine(engine)) as session:
        rule = add_alert_rule(session, window_seconds=3600, **fields)
        session.commit()
    return rule.id


def _evaluate(engine: Engine) -> None:
    """The rules measured and their firings recorded, as the server does after writes."""
    url = database_url(engine)
    own = make_engine(url)
    services = Services(
        settings=Settings(database_url=url),
        engine=own,
        tracker=build_tracker(own, load_entrypoints=False, retry_delays=()),
    )
    try:
        AlertEvaluator(services).evaluate()
    finally:
        services.close()


@pytest.fixture
def guarded(engine: Engine) -> dict[str, int]:
    """Today's invocations in projects web and api, four budgets and three alert rules, two of
    them firing. Returns the ids by name."""
    at = _now_ish()
    add_events(
        engine,
        # code-reviewer: $1.50 today over web and api, 2 of 3 failed.
        make_event(project_id="web", timestamp=at, cost_usd=0.5, status=Status.FAILED,
                   error_message="boom"),
        make_event(project_id="web", timestamp=at, cost_usd=0.25),
        make_event(project_id="api", timestamp=at, cost_usd=0.75, status=Status.FAILED,
                   error_message="boom"),
        make_event(project_id="api", name="deployer", timestamp=at, cost_usd=4.0),
        make_event(project_id="web", kind="skill", name="lint-fix", timestamp=at, cost_usd=None,
                   input_tokens=3000, output_tokens=500),
    )  # fmt: skip
    ids = {
        "web month": _budget(engine, project_id="web", period="month", usd=100),
        "reviewer day": _budget(engine, kind="agent", name="code-reviewer", period="day", usd=1),
        "lint-fix day": _budget(
            engine, kind="skill", name="lint-fix", period="day", tokens=1_000_000, action="warn"
        ),
        "api day": _budget(engine, project_id="api", period="day", usd=50),
        "failures": _rule(engine, metric=Metric.FAILURE_RATE, threshold=0.5, kind="agent",
                          name="code-reviewer", min_sample=2),
        "api cost": _rule(engine, metric=Metric.COST, threshold=3.0, project_id="api"),
        "lint p95": _rule(engine, metric=Metric.P95_DURATION, threshold=600, kind="skill",
                          name="lint-fix"),
    }  # fmt: skip
    _evaluate(engine)
    return ids


def _labels(items: list[dict[str, Any]], key: str = "budget") -> list[str]:
    return [item[key]["label"] if key else item["label"] for item in items]


@pytest.mark.usefixtures("guarded")
def test_the_report_json_holds_the_covering_budgets_spent_first_and_the_open_alerts(
    cli: Cli,
) -> None:
    for surface in SURFACES:
        report = cli.json(surface, "analytics", "report")
        assert report["totals"]["invocations"] == 5  # the report itself is unchanged
        # The spent one first, then in id order.
        assert _labels(report["budgets"]) == [
            "code-reviewer per day", "project web per month", "lint-fix per day",
            "project api per day",
        ]  # fmt: skip
        reviewer = report["budgets"][0]
        assert (reviewer["spent"], reviewer["remaining"], reviewer["exhausted"]) == (1.5, 0, True)
        assert reviewer["budget"]["limitUsd"] == 1.0 and reviewer["forecast"] >= 1.5
        tokens = report["budgets"][2]
        assert (tokens["spent"], tokens["remaining"]) == (3500, 1_000_000 - 3500)
        # The p95 rule is not firing; the other two are, with their measure and since when.
        alerts = {alert["label"]: alert for alert in report["openAlerts"]}
        assert set(alerts) == {
            "failure rate of agent code-reviewer over 1h above 50.0%",
            "cost of project api over 1h above $3.00",
        }
        failing = alerts["failure rate of agent code-reviewer over 1h above 50.0%"]
        assert failing["value"] == pytest.approx(2 / 3) and failing["state"] == "FIRING"
        assert datetime.fromisoformat(failing["changedAt"]) <= datetime.now(UTC)
        assert alerts["cost of project api over 1h above $3.00"]["value"] == pytest.approx(4.75)


@pytest.mark.usefixtures("guarded")
def test_the_report_of_a_project_or_a_kind_mentions_what_covers_it_only(cli: Cli) -> None:
    for surface in SURFACES:
        web = cli.json(surface, "analytics", "report", "--project", "web")
        # One agent's budget in every project covers web's agents; api's budget does not.
        assert _labels(web["budgets"]) == [
            "code-reviewer per day", "project web per month", "lint-fix per day",
        ]  # fmt: skip
        assert _labels(web["openAlerts"], "") == [
            "failure rate of agent code-reviewer over 1h above 50.0%"
        ]
        skills = cli.json(surface, "analytics", "report", "--kind", "skill")
        assert _labels(skills["budgets"]) == [
            "project web per month", "lint-fix per day", "project api per day",
        ]  # fmt: skip
        assert _labels(skills["openAlerts"], "") == ["cost of project api over 1h above $3.00"]
        api_agents = cli.json(surface, "analytics", "report", "--kind", "agent", "--project", "api")
        assert _labels(api_agents["budgets"]) == ["code-reviewer per day", "project api per day"]
        assert len(api_agents["openAlerts"]) == 2


@pytest.mark.usefixtures("guarded")
@pytest.mark.parametrize("width", [80, 60])
def test_the_report_table_shows_budgets_and_open_alerts_and_fits(cli: Cli, width: int) -> None:
    for surface in SURFACES:
        result = cli.run(surface, "analytics", "report", COLUMNS=str(width))
        assert result.exit_code == 0, (result.stdout, result.stderr)
        printed = result.stdout
        assert_fits(printed, width)
        budgets = printed[printed.index("Budgets now") :]
        rows = [
            line.split()[0]
            for line in budgets.splitlines()
            if line[:3].strip() and line.startswith("  ")
        ]
        assert rows[1:5] == ["code-reviewer", "project", "lint-fix", "project"], budgets
        reviewer = table_row(budgets, "code-reviewer per day")
        assert reviewer[-1] == "spent" and "$1.50" in reviewer and "$1.00" in reviewer
        assert table_row(budgets, "project web per month")[-1] == "ok"
        if width == 80:  # every column
            assert reviewer[1:] == ["$1.00", "$1.50", "$0.00", reviewer[4], "spent"]
        said = " ".join(printed.split())
        assert SPENT_LINE in said
        alerts = said[said.index("Open alerts") :]
        since = "firing since " + datetime.now(UTC).strftime("%Y-%m-%d")
        assert f"failure rate of agent code-reviewer over 1h above 50.0%: 66.7% now, {since}" in (
            alerts
        )
        assert f"cost of project api over 1h above $3.00: $4.75 now, {since}" in alerts
        assert "p95 duration" not in alerts


def test_without_budgets_or_alerts_the_report_says_nothing_more(cli: Cli) -> None:
    add_events(cli.engine, make_event(timestamp=_now_ish()))
    for surface in SURFACES:
        report = cli.json(surface, "analytics", "report")
        assert (report["budgets"], report["openAlerts"]) == ([], [])
        printed = cli.run(surface, "analytics", "report")
        assert "Budgets" not in printed.stdout and "alert" not in printed.stdout.lower()
        assert "budget" not in printed.stderr and "alert" not in printed.stderr
    # A rule that does not fire is no open alert.
    _rule(cli.engine, metric=Metric.COST, threshold=100.0)
    _evaluate(cli.engine)
    assert cli.json("http", "analytics", "report")["openAlerts"] == []
    assert "Open alerts" not in cli.run("in-process", "analytics", "report").stdout


@pytest.fixture
def secured(engine: Engine) -> Iterator[Secured]:
    with secured_server(engine) as server:
        yield server


def _over_http(server: Secured, key: str, *args: str) -> Any:
    env = {"CLAUDE_API_URL": server.url, "CLAUDE_API_KEY": key, "COLUMNS": "80",
           "CLAUDE_API_DATABASE_URL": None}  # fmt: skip
    return CliRunner().invoke(app, ["analytics", "report", *args], env=env)


def test_a_project_bound_key_sees_its_own_budgets_and_alerts_only(
    secured: Secured, guarded: dict[str, int]
) -> None:
    read = secured.key("read")
    everything = json.loads(_over_http(secured, read, "--json").stdout)
    assert len(everything["budgets"]) == 4 and len(everything["openAlerts"]) == 2

    web = secured.key("read", project="web")
    answer = _over_http(secured, web, "--json")
    assert answer.exit_code == 0, answer.output
    report = json.loads(answer.stdout)
    # Not the budgets of every project (code-reviewer's, lint-fix's), which would tell what
    # other projects spent, nor api's; its report counts web's invocations only.
    assert _labels(report["budgets"]) == ["project web per month"]
    assert report["openAlerts"] == []
    assert report["totals"]["invocations"] == 3
    printed = _over_http(secured, web).stdout
    assert "project web per month" in printed and "code-reviewer per day" not in printed

    api = secured.key("read", project="api")
    report = json.loads(_over_http(secured, api, "--json").stdout)
    assert _labels(report["budgets"]) == ["project api per day"]
    assert _labels(report["openAlerts"], "") == ["cost of project api over 1h above $3.00"]

    other = _over_http(secured, web, "--project", "api")
    assert other.exit_code == 1
    assert "bound to project 'web'" in other.stderr


@pytest.mark.usefixtures("guarded")
def test_the_console_script_at_60_columns(engine: Engine) -> None:
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": database_url(engine), "COLUMNS": "60"}
    env.pop("CLAUDE_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "claude_api.client", "analytics", "report"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_fits(done.stdout, 60)
    assert table_row(done.stdout, "code-reviewer per day")[-1] == "spent"
    assert SPENT_LINE in " ".join(done.stdout.split())
    assert "Open alerts" in done.stdout


def test_unpriced_invocations_are_told_per_budget_never_summed(cli: Cli) -> None:
    at = _now_ish()
    unpriced = {"cost_usd": None, "model": None, "input_tokens": None, "output_tokens": None}
    add_events(
        cli.engine,
        *(make_event(project_id="web", timestamp=at, **unpriced) for _ in range(2)),
        make_event(project_id="api", timestamp=at, **unpriced),
        make_event(project_id="api", timestamp=at, cost_usd=2.0),
    )
    _budget(cli.engine, project_id="web", period="day", usd=10)
    _budget(cli.engine, period="day", usd=10)
    # Everything's budget holds web's invocations too: 3 unpriced in all, not 2 + 3.
    note = "invocations that report no cost are left out of USD spends: "
    note += "2 of 'project web per day', 3 of 'everything per day'"
    for surface in SURFACES:
        for command in (["budgets", "status"], ["analytics", "report"]):
            result = cli.run(surface, *command)
            assert result.exit_code == 0, result.stderr
            assert note in " ".join(result.stderr.split())
