"""Budgets on every surface, on SQLite and PostgreSQL: `claude-api budgets` over HTTP and
in-process, GraphQL and REST with API keys (read to look, admin to change, a project-bound key
its project only), and the PreToolUse hook asking a team's server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.auth_support import Secured, bearer, secured_server
from tests.cli_support import Cli, assert_fits, table_row
from tests.cli_support import cli as cli  # the fixture
from tests.factories import add_events, make_event
from tests.test_budget_hook import AGENT_CALL, hook_env, hook_log, run_hook

BUDGET = """
fragment B on Budget { id kind name projectId period unit limitUsd limitTokens action tz label }
"""
SET = BUDGET + "mutation($b: BudgetInput!) { setBudget(budget: $b) { ...B } }"
LIST = BUDGET + "query { budgets { ...B } }"
REMOVE = BUDGET + "mutation($id: Int!) { removeBudget(id: $id) { ...B } }"
STATUS = "query { budgetStatus { budget { id } spent remaining exhausted message } }"


@pytest.fixture
def secured(engine: Engine) -> Iterator[Secured]:
    with secured_server(engine) as server:
        yield server


def _now_ish() -> datetime:
    """A moment of today (UTC) that stays in today for the test's few seconds."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now - timedelta(seconds=1) if now - midnight > timedelta(seconds=5) else now


# ---- the CLI, both ways -----------------------------------------------------------------------


def test_budgets_commands_set_list_show_and_remove(cli: Cli) -> None:
    add_events(cli.engine, make_event(timestamp=_now_ish(), cost_usd=12.5))
    for surface in ("http", "in-process"):
        made = cli.json(
            surface, "budgets", "set", "--agent", "code-reviewer", "--per", "day", "--usd", "20",
        )  # fmt: skip
        assert made["label"] == "code-reviewer per day"
        assert (made["limitUsd"], made["action"], made["tz"]) == (20.0, "DENY", "UTC")
    # Setting it again from either surface changed the one budget.
    listed = cli.both_json("budgets", "list")
    assert [budget["id"] for budget in listed] == [made["id"]]
    cli.ok("http", "budgets", "set", "--project", "web", "--per", "month", "--tokens",
           "5000000", "--action", "warn", "--tz", "Europe/Paris")  # fmt: skip

    # The forecast follows the clock, so each surface is read on its own.
    for surface in ("http", "in-process"):
        printed = cli.ok(surface, "budgets", "status").stdout
        assert_fits(printed)
        row = table_row(printed, "code-reviewer per day")
        assert row[1:4] + row[5:] == ["$20.00", "$12.50", "$7.50", "ok"]
        assert table_row(printed, "project web per month")[1:3] == ["5.00M tokens", "0"]
        statuses = cli.json(surface, "budgets", "status")
        assert [(s["spent"], s["remaining"], s["exhausted"]) for s in statuses] == [
            (12.5, 7.5, False), (0.0, 5_000_000.0, False),
        ]  # fmt: skip

    listing = cli.both("budgets", "list")
    assert table_row(listing, str(made["id"]))[1:] == [
        "code-reviewer per day", "$20.00", "deny", "UTC",
    ]  # fmt: skip
    removed = cli.json("in-process", "budgets", "remove", str(made["id"]))
    assert removed["id"] == made["id"]
    assert [b["label"] for b in cli.both_json("budgets", "list")] == ["project web per month"]
    gone = cli.run("http", "budgets", "remove", str(made["id"]))
    assert gone.exit_code == 1 and f"no budget {made['id']}" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--per", "day", "--usd", "1"], "say what to limit"),
        (["--all", "--agent", "a", "--per", "day", "--usd", "1"], "--all limits everything"),
        (["--agent", "a", "--skill", "b", "--per", "day", "--usd", "1"], "not both"),
        (["--all", "--per", "day"], "--usd or with --tokens"),
        (["--all", "--per", "day", "--usd", "1", "--tokens", "9"], "--usd or with --tokens"),
        (["--all", "--per", "day", "--usd", "0"], "--usd must be above 0"),
        (["--all", "--per", "year", "--usd", "1"], "'year' is not one of"),
        (["--all", "--per", "day", "--usd", "1", "--tz", "Mars/Base"], "unknown IANA time zone"),
    ],
)
def test_budgets_set_refuses_bad_options(cli: Cli, args: list[str], message: str) -> None:
    result = cli.run("in-process", "budgets", "set", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert cli.json("in-process", "budgets", "list") == []


# ---- GraphQL and REST with keys ---------------------------------------------------------------


def test_reading_needs_a_read_key_and_changing_an_admin_key(secured: Secured) -> None:
    read, write, admin = secured.key("read"), secured.key("write"), secured.key("admin")
    variables = {"b": {"period": "DAY", "kind": "AGENT", "name": "x", "usd": 5.0}}
    for key in (read, write):
        refused = secured.graphql(SET, key, **variables).json()
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert secured.post("/v1/budgets", {"period": "day", "usd": 1.0}, key).status_code == 403
    made = secured.data(SET, admin, **variables)["setBudget"]
    assert secured.data(LIST, read)["budgets"] == [made]
    assert secured.graphql(LIST, write).json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert secured.get("/v1/budgets", write).status_code == 403
    deleted = httpx.delete(f"{secured.url}/v1/budgets/{made['id']}", headers=bearer(read))
    assert deleted.status_code == 403
    assert secured.data(REMOVE, admin, id=made["id"])["removeBudget"] == made


def test_a_project_bound_key_sees_and_sets_its_project_only(secured: Secured) -> None:
    admin, web = secured.key("admin"), secured.key("admin", project="web")
    everything = secured.data(SET, admin, b={"period": "DAY", "usd": 100.0})["setBudget"]
    api = secured.data(SET, admin, b={"period": "DAY", "usd": 9.0, "projectId": "api"})
    # Without a project, a bound key's budget is its project's.
    own = secured.data(SET, web, b={"period": "WEEK", "usd": 10.0})["setBudget"]
    assert (own["projectId"], own["label"]) == ("web", "project web per week")
    other = secured.graphql(SET, web, b={"period": "DAY", "usd": 1.0, "projectId": "api"})
    assert other.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert secured.post("/v1/budgets", {"period": "day", "usd": 1.0, "project_id": "api"},
                        web).status_code == 403  # fmt: skip

    assert [b["id"] for b in secured.data(LIST, web)["budgets"]] == [own["id"]]
    assert [item["budget"]["id"] for item in secured.data(STATUS, web)["budgetStatus"]] == [
        own["id"]
    ]
    assert [b["id"] for b in secured.get("/v1/budgets", web).json()["items"]] == [own["id"]]
    for budget in (everything, api["setBudget"]):
        refused = secured.graphql(REMOVE, web, id=budget["id"]).json()
        assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        response = httpx.delete(f"{secured.url}/v1/budgets/{budget['id']}", headers=bearer(web))
        assert response.status_code == 404
    assert len(secured.data(LIST, admin)["budgets"]) == 3


def test_rest_sets_reads_checks_and_removes_budgets(secured: Secured) -> None:
    admin, read = secured.key("admin"), secured.key("read")
    add_events(secured.engine, make_event(timestamp=_now_ish(), cost_usd=20.41))
    body = {"kind": "agent", "name": "code-reviewer", "period": "day", "usd": 20.0}

    created = secured.post("/v1/budgets", body, admin)
    assert created.status_code == 201, created.text
    budget = created.json()
    assert budget == {
        "id": budget["id"], "kind": "agent", "name": "code-reviewer", "project_id": None,
        "period": "day", "unit": "usd", "limit_usd": 20.0, "limit_tokens": None,
        "action": "deny", "tz": "UTC", "label": "code-reviewer per day",
    }  # fmt: skip
    again = secured.post("/v1/budgets", {**body, "action": "warn"}, admin)
    assert again.status_code == 200 and again.json()["action"] == "warn"
    secured.post("/v1/budgets", {**body, "action": "deny"}, admin)

    [status] = secured.get("/v1/budgets/status", read).json()["items"]
    assert (status["spent"], status["remaining"], status["exhausted"]) == (20.41, 0, True)
    check = secured.get("/v1/agents/code-reviewer/budgets", read).json()
    assert check["decision"] == "deny"
    assert check["reasons"] == ["budget 'code-reviewer per day' of $20.00 is spent: $20.41 today"]
    allowed = secured.get("/v1/skills/code-reviewer/budgets", read).json()
    assert (allowed["decision"], allowed["budgets"]) == ("allow", [])

    removed = httpx.delete(f"{secured.url}/v1/budgets/{budget['id']}", headers=bearer(admin))
    assert removed.status_code == 200 and removed.json() == {**budget, "action": "deny"}
    assert secured.get("/v1/budgets", read).json() == {"items": []}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"period": "fortnight", "usd": 1.0}, 422, "period"),
        ({"period": "day", "usd": "20"}, 422, "usd"),
        ({"period": "day", "tokens": 1.5}, 422, "tokens"),
        ({"period": "day", "usd": 1.0, "colour": "red"}, 422, "colour"),
        ({"period": "day"}, 422, "usd"),
        ({"period": "day", "usd": -1.0}, 422, "usd"),
        ({"period": "day", "usd": 1.0, "tz": "Nowhere/Land"}, 422, "tz"),
        ({"period": "day", "usd": 1.0, "kind": "agent"}, 422, "name"),
    ],
)
def test_rest_refuses_bad_budgets(secured: Secured, body: dict, status: int, field: str) -> None:
    admin = secured.key("admin")
    response = secured.post("/v1/budgets", body, admin)
    assert response.status_code == status, response.text
    assert field in {problem["field"] for problem in response.json()["errors"]}
    assert secured.get("/v1/budgets", admin).json() == {"items": []}


def test_rest_takes_json_bodies_only(secured: Secured) -> None:
    admin = secured.key("admin")
    sent = httpx.post(
        f"{secured.url}/v1/budgets",
        content=json.dumps({"period": "day", "usd": 1.0}),
        headers={**bearer(admin), "Content-Type": "text/plain"},
    )
    assert sent.status_code == 415
    broken = httpx.post(
        f"{secured.url}/v1/budgets",
        content="{ nope",
        headers={**bearer(admin), "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert secured.get("/v1/agents/x/budgets", admin, kind="tool").status_code == 400
    assert secured.get("/v1/budgets", admin, colour="red").status_code == 400
    assert secured.get("/v1/budgets", admin).json() == {"items": []}


# ---- the hook, asking a team's server ---------------------------------------------------------


def test_the_hook_asks_the_server_at_claude_api_url(secured: Secured, tmp_path: Path) -> None:
    add_events(secured.engine, make_event(timestamp=_now_ish(), cost_usd=25.0))
    secured.post(
        "/v1/budgets",
        {"kind": "agent", "name": "code-reviewer", "period": "day", "usd": 20.0},
        secured.key("admin"),
    )
    # No database here: the decision comes from the server, with a read key.
    env = hook_env(tmp_path, f"sqlite:///{tmp_path / 'absent.db'}",
                   CLAUDE_API_URL=secured.url, CLAUDE_API_KEY=secured.key("read"))  # fmt: skip

    result = run_hook(AGENT_CALL, env)

    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["hookSpecificOutput"]["permissionDecisionReason"] == (
        "budget 'code-reviewer per day' of $20.00 is spent: $25.00 today"
    )
    # A key the server refuses: the call goes on, and the log says why.
    refused = run_hook(AGENT_CALL, {**env, "CLAUDE_API_KEY": "cc_000000000000_nope"})
    assert (refused.returncode, refused.stdout) == (0, "")
    assert "HTTP 401" in refused.stderr and "HTTP 401" in hook_log(tmp_path)


def test_the_call_goes_on_when_the_server_is_down(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = hook_env(tmp_path, None, CLAUDE_API_URL=f"http://127.0.0.1:{port}")

    result = run_hook(AGENT_CALL, env)

    assert (result.returncode, result.stdout) == (0, "")
    assert "budgets not checked" in result.stderr and "Connection refused" in result.stderr
    assert "budgets not checked" in hook_log(tmp_path)
