"""Budgets and `max_cost` in the executor, with the fake `claude`: a spent deny budget refuses
a task before anything runs (`claude-api run`, `POST /v1/task`); a run whose streamed cost
passes its `max_cost` is stopped mid-stream and fails with that reason, keeping what it spent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.events import Status
from claude_api.executor import run_task
from claude_api.executor.task_session import InvalidTask
from claude_api.models.budgets import set_budget
from claude_api.models.db import make_engine, upgrade, write_engine
from claude_api.models.tables import AgentUsage, TaskSession
from claude_api.tracking import Tracker
from tests.auth_support import Secured, bearer, secured_server
from tests.factories import add_events, make_event
from tests.fake_claude import FakeClaude
from tests.fake_claude import scenarios as sc
from tests.test_executor import agent_rows, live_group_members, price, streamed_tokens
from tests.test_run_command import claude_api

CHILD = "toolu_01A"


def costly_script(tmp_path: Path) -> tuple[sc.Script, list[float], int]:
    """A run whose main loop and one subagent stream responses of known cost, then waits for a
    file that never comes: only being stopped ends it. Returns the script, the cumulative
    streamed cost after each of its lines, and the number of the line after which it waits."""
    lines: list[sc.Message] = [
        sc.init(),
        sc.assistant("msg_M1", sc.text("Let me review."), sc.usage(400, 120, read=20_000)),
        sc.assistant(
            "msg_M2",
            sc.tool_use(CHILD, "Agent", {"subagent_type": "code-reviewer", "prompt": "Review"}),
            sc.usage(10, 60, read=20_400),
        ),
        sc.subagent_prompt(CHILD, "Review"),
        sc.assistant("msg_C1", sc.text("Reading"), sc.usage(3, 200, read=9000), parent=CHILD),
        sc.assistant("msg_C2", sc.text("More"), sc.usage(3, 900, read=9200), parent=CHILD),
        sc.assistant("msg_C3", sc.text("Done"), sc.usage(3, 900, read=9400), parent=CHILD),
    ]
    cumulative, total = [], 0.0
    for line in lines:
        if line["type"] == "assistant":
            total += price(line["message"]["model"], line["message"]["usage"])
        cumulative.append(total)
    script = sc.Script(
        list(lines), pause_after_line=len(lines), resume_file=str(tmp_path / "never")
    )
    return script, cumulative, len(lines)


@pytest.fixture
def fake(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


# ---- max_cost ---------------------------------------------------------------------------------


def test_a_run_past_its_max_cost_is_stopped_mid_stream(
    fake: FakeClaude, tracker: Tracker, engine: Engine, tmp_path: Path
) -> None:
    script, cumulative, _ = costly_script(tmp_path)
    # Over the limit once the subagent's second response (line 6) is streamed.
    max_cost = (cumulative[4] + cumulative[5]) / 2
    crossing = next(line for line, cost in enumerate(cumulative, 1) if cost > max_cost)
    assert crossing == 6
    script.pause_after_line = crossing  # then it waits: only being stopped ends it
    settings = Settings(claude_bin=str(fake.install(script)))

    started = time.monotonic()
    result = run_task(
        "Review", tracker=tracker, settings=settings, max_cost=max_cost, timeout=120,
        kill_grace=2, registry=engine,
    )  # fmt: skip
    assert tracker.flush(30)

    assert time.monotonic() - started < 60  # stopped, not timed out
    spent = cumulative[crossing - 1]
    assert result.status is Status.FAILED
    assert (
        result.error == f"stopped at a cost of ${spent:.4f}, over its max_cost of ${max_cost:.4f}"
    )
    assert result.cost_usd == pytest.approx(spent, rel=1e-9)
    [call] = fake.calls()
    assert live_group_members(call["pgid"]) == []

    rows = agent_rows(engine)
    main, reviewer = rows["main"], rows["code-reviewer"]
    assert (main["status"], main["error_message"]) == ("failed", result.error)
    assert reviewer["status"] == "failed"
    # What was spent is kept, each row its own: the main loop's and the subagent's responses.
    streamed = sc.Script(script.stdout[:crossing])
    assert {key: main[key] for key in streamed_tokens(streamed, None)} == streamed_tokens(
        streamed, None
    )
    assert {key: reviewer[key] for key in streamed_tokens(streamed, CHILD)} == streamed_tokens(
        streamed, CHILD
    )
    assert main["cost_usd"] + reviewer["cost_usd"] == pytest.approx(spent, rel=1e-9)


def test_a_run_within_its_max_cost_completes(
    fake: FakeClaude, tracker: Tracker, engine: Engine
) -> None:
    settings = Settings(claude_bin=str(fake.install(sc.success())))
    result = run_task("Fix lint", tracker=tracker, settings=settings, max_cost=5.0)
    assert (result.status, result.cost_usd) == (Status.COMPLETED, sc.SUCCESS_TOTAL_COST)


@pytest.mark.parametrize("max_cost", [0.0, -1.0, float("nan"), float("inf")])
def test_a_max_cost_that_is_no_amount_is_refused(fake: FakeClaude, max_cost: float) -> None:
    settings = Settings(claude_bin=str(fake.install(sc.success())))
    with pytest.raises(InvalidTask) as refused:
        run_task("Fix lint", tracker=None, settings=settings, max_cost=max_cost)
    assert refused.value.field == "max_cost"
    assert fake.calls() == []


# ---- budgets, through the server --------------------------------------------------------------


def _spent_budget(engine: Engine, **fields: object) -> None:
    now = datetime.now(UTC)
    moment = max(now - timedelta(seconds=1), now.replace(hour=0, minute=0, second=0))
    add_events(engine, make_event(name="main", project_id="web", timestamp=moment, cost_usd=5.0))
    with Session(write_engine(engine)) as session:
        set_budget(session, period="day", usd=5.0, **fields)  # type: ignore[arg-type]
        session.commit()


@pytest.fixture
def secured(engine: Engine, fake: FakeClaude, tmp_path: Path) -> Iterator[Secured]:
    script, _, _ = costly_script(tmp_path)
    with secured_server(engine, claude_bin=str(fake.install(script))) as server:
        yield server


def test_a_spent_deny_budget_refuses_the_task(secured: Secured, fake: FakeClaude) -> None:
    _spent_budget(secured.engine, project_id="web")
    admin = secured.key("admin")

    refused = secured.post("/v1/task", {"prompt": "Review", "project_id": "web"}, admin)

    assert refused.status_code == 409, refused.text
    body = refused.json()
    reason = "budget 'project web per day' of $5.00 is spent: $5.00 today"
    assert body["message"] == f"{reason}; nothing was run"
    assert [budget["message"] for budget in body["budgets"]] == [reason]
    assert fake.calls() == []  # Claude Code never started
    with secured.engine.connect() as connection:
        assert connection.execute(sa.select(TaskSession.__table__)).all() == []
        assert connection.execute(sa.select(sa.func.count()).select_from(AgentUsage)).scalar() == 1
    # Another project's task is not covered.
    other = secured.post(
        "/v1/task", {"prompt": "Review", "project_id": "api", "max_cost": 0.01}, admin
    )
    assert other.status_code == 200 and len(fake.calls()) == 1


def test_post_task_stops_a_run_past_its_max_cost(secured: Secured, fake: FakeClaude) -> None:
    admin = secured.key("admin")
    answer = secured.post("/v1/task", {"prompt": "Review", "max_cost": 0.02}, admin).json()
    assert answer["status"] == "failed"
    assert (
        answer["error"].startswith("stopped at a cost of $")
        and "max_cost of $0.0200" in (answer["error"])
    )
    assert answer["cost_usd"] > 0.02
    for bad in ("0", "-1", '"a lot"', "1e400"):
        response = httpx.post(
            f"{secured.url}/v1/task",
            content=f'{{"prompt": "Review", "max_cost": {bad}}}',
            headers={**bearer(admin), "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code in (400, 422), (bad, response.text)
        if response.status_code == 422:
            assert "max_cost" in {problem["field"] for problem in response.json()["errors"]}
    assert len(fake.calls()) == 1


# ---- budgets, through `claude-api run` --------------------------------------------------------


def test_claude_api_run_refuses_a_task_a_deny_budget_forbids(
    fake: FakeClaude, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    upgrade(engine)
    _spent_budget(engine, kind="agent", name="main")
    engine.dispose()

    refused = claude_api(fake, sc.success(), "Fix lint", database_url=url)

    assert refused.returncode == 2, refused.stderr
    assert "budget 'main per day' of $5.00 is spent: $5.00 today; nothing was run" in " ".join(
        refused.stderr.split()
    )
    assert fake.calls() == []
    # A warn budget lets it run, and says so.
    engine = make_engine(url)
    with Session(write_engine(engine)) as session:
        set_budget(session, kind="agent", name="main", period="day", usd=5.0, action="warn")
        session.commit()
    engine.dispose()
    warned = claude_api(fake, sc.success(), "Fix lint", database_url=url)
    assert warned.returncode == 0, warned.stderr
    assert "warning: budget 'main per day' of $5.00 is spent" in " ".join(warned.stderr.split())


def test_claude_api_run_stops_at_its_max_cost(fake: FakeClaude, tmp_path: Path) -> None:
    script, _, _ = costly_script(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    stopped = claude_api(fake, script, "Review", "--max-cost", "0.02", database_url=url)

    assert stopped.returncode == 1
    assert "over its max_cost of $0.0200" in " ".join(stopped.stderr.split())
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sa.select(AgentUsage.agent_name, AgentUsage.status, AgentUsage.cost_usd)
            ).all()
    finally:
        engine.dispose()
    assert {(name, status) for name, status, _ in found} == {
        ("main", "failed"), ("code-reviewer", "failed"),
    }  # fmt: skip
    assert sum(cost for _, _, cost in found) > 0.02  # what it spent is kept


def test_a_first_run_on_a_new_database_has_no_budget_to_warn_about(
    fake: FakeClaude, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'cli.db'}"
    done = claude_api(fake, sc.success(), "Fix lint", database_url=url)
    assert done.returncode == 0, done.stderr
    assert "budgets not checked" not in done.stderr
