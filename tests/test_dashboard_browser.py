"""The dashboard in real Chromium (driven by Playwright) on a real server over seeded data, on
SQLite and PostgreSQL: every page shows the seeded numbers (budgets and open alerts, an agent's
duration histogram, models and tasks, the last 24 hours by the hour too), navigation and the back
button work, a posted event appears without a reload, the key prompt and a project-bound key
work, nothing is logged to the console and no request leaves the server's origin.

The expected numbers are computed here from the seeded events, in the browser's time zone.
`CLAUDE_API_WRITE_SCREENSHOT=1` rewrites docs/dashboard.png from demo data.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import subprocess
import sys
import time as time_module
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy
from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import CacheStats
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.alerts import add_rule
from claude_api.models.budgets import set_budget
from claude_api.models.db import write_engine
from claude_api.models.keys import revoke_key
from claude_api.models.queries.durations import EDGES
from claude_api.server.alerting import AlertEvaluator
from claude_api.server.app import create_app
from tests import expected
from tests.auth_support import Secured, secured_server
from tests.factories import add_events, make_event
from tests.live_server import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

TZ_NAME = "America/New_York"  # not the server's UTC: days are the browser's
TZ = ZoneInfo(TZ_NAME)
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "dashboard.png"
AGENTS = ["planner", "planner", "planner", "reviewer", "reviewer", "tester", "doc/writer"]
SKILLS = ["pdf", "commit"]
ERRORS = ["Tool Bash failed: timed out", "Context window exceeded"]
MODELS = ["claude-sonnet-4-5", "claude-sonnet-4-5", "claude-opus-4-1", None]  # None: not recorded
MINUS, UNKNOWN = "\N{MINUS SIGN}", "\N{EN DASH}"  # as the page writes them
USAGE_DATA = re.compile(r"\b(?:agent_usage|skill_usage|usage_\w+)\b")  # the tables of invocations


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


@dataclass
class Tab:
    """One browser tab on the dashboard, recording every request and console message."""

    page: Any
    base: str
    requests: list[Any] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)

    def figure(self, metric: str) -> str:
        locator = self.page.locator(f'[data-metric="{metric}"] .value')
        locator.wait_for()
        return locator.get_attribute("data-value")

    def rows(self, selector: str) -> list[Any]:
        return self.page.locator(selector).all()

    def check_clean(self, allowed: tuple[str, ...] = ()) -> None:
        """No console error or warning (but `allowed` ones), and every request went to the
        server the page came from."""
        problems = [m for m in self.console if not any(text in m for text in allowed)]
        assert problems == []
        elsewhere = [r.url for r in self.requests if not r.url.startswith(self.base + "/")]
        assert elsewhere == []


@contextmanager
def tab(browser: Any, base: str, **options: Any) -> Iterator[Tab]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        locale="en-US",
        timezone_id=TZ_NAME,
        **options,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    opened = Tab(page, base)
    page.on("request", lambda request: opened.requests.append(request))
    page.on("console", lambda m: m.type in ("error", "warning") and opened.console.append(m.text))
    page.on("pageerror", lambda error: opened.console.append(f"page error: {error}"))
    try:
        yield opened
    finally:
        context.close()


# --- the seeded data and what it should show ---------------------------------------------------


def seed(now: datetime) -> list[UsageEvent]:
    """Invocations over the last five days (the current 7 days) and 8 to 12 days back (the
    previous 7), in projects web and api; costs in eighths of a dollar so sums are exact, some
    unknown (the skill commit never has one), on two models or none recorded; and task-tree,
    the most recent task, whose invocations nest three deep."""
    rng = random.Random(15)
    models = random.Random(18)  # apart, so the models leave the other draws as they were
    events = []

    def some(count: int, earliest: timedelta, latest: timedelta) -> None:
        for _ in range(count):
            kind = Kind.SKILL if rng.random() < 0.3 else Kind.AGENT
            name = rng.choice(SKILLS if kind is Kind.SKILL else AGENTS)
            status = rng.choice([Status.COMPLETED] * 5 + [Status.FAILED] * 2 + [Status.RUNNING])
            finished = status is not Status.RUNNING
            cost = None if name == "commit" else rng.choice([0.125, 0.25, 0.5, 1.5, None])
            events.append(
                make_event(
                    kind=kind,
                    name=name,
                    task_id=f"task-{rng.randrange(40)}",
                    project_id=rng.choice(["web", "api"]),
                    timestamp=now - earliest - (latest - earliest) * rng.random(),
                    status=status,
                    duration_seconds=rng.uniform(1, 150) if finished else None,
                    cost_usd=cost,
                    input_tokens=rng.randrange(50_000),
                    output_tokens=rng.randrange(5_000),
                    cache_read_tokens=rng.choice([None, rng.randrange(2_000_000)]),
                    cache_creation_tokens=rng.choice([None, rng.randrange(200_000)]),
                    error_message=rng.choice(ERRORS) if status is Status.FAILED else None,
                    model=models.choice(MODELS),
                )
            )

    some(90, timedelta(hours=1), timedelta(days=5))
    some(30, timedelta(days=8), timedelta(days=12))
    root, child = uuid.uuid4(), uuid.uuid4()
    # Twenty minutes ago, but today in UTC: the day budgets count task-tree's spending.
    at = max(now - timedelta(minutes=20), datetime.combine(now.date(), time(), UTC))
    events += [
        make_event(event_id=root, name="planner", task_id="task-tree", project_id="web",
                   timestamp=at, cost_usd=0.5),
        make_event(event_id=child, parent_id=root, name="reviewer", task_id="task-tree",
                   project_id="web", timestamp=at + timedelta(seconds=5), cost_usd=0.25),
        make_event(parent_id=child, kind="skill", name="pdf", task_id="task-tree",
                   project_id="web", timestamp=at + timedelta(seconds=9), cost_usd=None,
                   input_tokens=None, output_tokens=None),
        make_event(parent_id=root, name="tester", task_id="task-tree", project_id="web",
                   timestamp=at + timedelta(seconds=30), cost_usd=0.125),
    ]  # fmt: skip
    return events


def last_days(now: datetime, days: int = 7) -> list[date]:
    """The browser's local days of the default period: today and the days before it."""
    today = now.astimezone(TZ).date()
    return [today - timedelta(days=days - 1 - n) for n in range(days)]


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), TZ)


def in_days(events: list[UsageEvent], days: list[date]) -> list[UsageEvent]:
    since, until = local_midnight(days[0]), local_midnight(days[-1] + timedelta(days=1))
    return [e for e in events if since <= e.timestamp < until]


def per_day(events: list[UsageEvent], days: list[date], value: Any = None) -> list[float]:
    sums = Counter()
    for event in events:
        sums[event.timestamp.astimezone(TZ).date()] += 1 if value is None else value(event) or 0
    return [sums[day] for day in days]


def tokens(event: UsageEvent) -> int:
    counts = (
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_creation_tokens,
    )
    return sum(count or 0 for count in counts)


def money(value: float) -> str:
    """As the browser's Intl formats dollars: halves rounded away from zero."""
    places = Decimal("0.01") if abs(value) >= 1 or value == 0 else Decimal("0.0001")
    return f"${Decimal(value).quantize(places, rounding=ROUND_HALF_UP):,}"


def change(now: float, before: float) -> str:
    relative = (now - before) / abs(before) * 100
    return f"{'+' if relative >= 0 else MINUS}{abs(relative):.1f}% vs previous"


@pytest.fixture
def seeded(engine: Engine) -> tuple[Engine, list[UsageEvent], datetime]:
    now = datetime.now(UTC)
    events = seed(now)
    add_events(engine, *events)
    return engine, events, now


def post_event(url: str, *, name: str) -> None:
    """A run of the agent `name` that finished now, as a running session records it."""
    event = {
        "event_id": str(uuid.uuid4()),
        "kind": "agent",
        "name": name,
        "task_id": "task-live",
        "timestamp": datetime.now(UTC).isoformat(),
        "status": "completed",
        "cost_usd": 0.25,
        "source": "test",
    }
    answer = httpx.post(f"{url}/v1/events", json={"events": [event]}, timeout=30)
    assert answer.status_code < 300


@contextmanager
def server(engine: Engine, **settings: Any) -> Iterator[Secured]:
    with secured_server(engine, **{"auth": "auto", **settings}) as running:
        yield running


# --- the tests ---------------------------------------------------------------------------------


def test_overview_agent_and_task_pages_show_the_seeded_numbers(browser, seeded) -> None:
    engine, events, now = seeded
    days = last_days(now)
    current = in_days(events, days)
    previous = in_days(events, [d - timedelta(days=7) for d in days])
    with server(engine) as running, tab(browser, running.url) as t:
        t.open("/")
        page = t.page
        want = expected.totals(current)
        assert int(t.figure("invocations")) == want["invocations"]
        assert float(t.figure("success-rate")) == pytest.approx(want["success_rate"])
        assert float(t.figure("cost")) == pytest.approx(want["total_cost_usd"])
        assert page.locator('[data-metric="cost"] .value').inner_text() == money(
            want["total_cost_usd"]
        )
        assert expected.close_percentile(float(t.figure("p95")), expected.durations(current), 95)
        assert page.locator('[data-metric="invocations"] .change').inner_text() == change(
            len(current), len(previous)
        )
        unpriced = sum(e.cost_usd is None for e in current)
        assert page.locator('[data-metric="cost"] .detail').inner_text() == (
            f"{unpriced:,} invocations unpriced (not in the sum)"
        )
        assert int(t.figure("tokens")) == sum(tokens(e) for e in current)

        # The invocations chart: a band per agent (all four are top agents), skills as other.
        page.locator("#chart-invocations canvas").first.wait_for()
        table = page.locator("#chart-invocations details table")
        headers = table.locator("thead th").all_text_contents()[1:]
        columns = list(zip(*[
            [int(cell.get_attribute("data-value")) for cell in row.locator("td.num").all()]
            for row in table.locator("tbody tr").all()
        ], strict=True))  # fmt: skip
        assert len(columns[0]) == len(days)
        agents = {e.name for e in current if e.kind is Kind.AGENT}
        assert set(headers) == agents | {"Other agents and skills"}
        for header, column in zip(headers, columns, strict=True):
            chosen = [
                e for e in current
                if (e.kind is Kind.SKILL if header.startswith("Other") else e.name == header)
            ]  # fmt: skip
            assert list(column) == per_day(chosen, days), header
        costs = page.locator("#chart-cost details tbody tr").all()
        totals = [
            sum(float(c.get_attribute("data-value") or 0) for c in row.locator("td.num").all())
            for row in costs
        ]
        assert totals == pytest.approx(per_day(current, days, lambda e: e.cost_usd))

        # Leaderboards: runs per agent and skill, each with its trend line per day.
        for kind, table_id in ((Kind.AGENT, "#table-agents"), (Kind.SKILL, "#table-skills")):
            names = Counter(e.name for e in current if e.kind is kind)
            rows = t.rows(f"{table_id} tbody tr")
            assert len(rows) == len(names)
            for row in rows:
                name = row.get_attribute("data-name")
                assert row.locator('td[data-key="invocations"]').inner_text() == f"{names[name]:,}"
                spark = row.locator("svg.spark").get_attribute("data-values")
                runs = per_day([e for e in current if e.kind is kind and e.name == name], days)
                assert spark == ",".join(str(n) for n in runs)
            if kind is Kind.SKILL:  # no cost known: unknown, never $0.00
                commit = page.locator(
                    f'{table_id} tr[data-name="commit"] td[data-key="totalCostUsd"]'
                )
                assert commit.inner_text() == f"{UNKNOWN} ({names['commit']} unpriced)"
            runs = [int(r.replace(",", "")) for r in page.locator(
                f'{table_id} td[data-key="invocations"]').all_inner_texts()]  # fmt: skip
            assert runs == sorted(runs, reverse=True)

        # Sorting by keyboard: the Name header's button, then Enter.
        page.locator('#table-agents th[data-key="name"] button').focus()
        page.keyboard.press("Enter")
        page.wait_for_selector('#table-agents th[data-key="name"][aria-sort="ascending"]')
        shown = [r.get_attribute("data-name") for r in t.rows("#table-agents tbody tr")]
        assert shown == sorted(shown)

        errors = [
            (
                row.locator(".kind").inner_text().upper(),
                row.locator("a").inner_text(),
                row.locator("td").nth(1).inner_text(),
                int(row.locator("td").nth(2).get_attribute("data-value")),
            )
            for row in t.rows("table.errors tbody tr")
        ]
        assert errors == [
            (kind.upper(), name, message, count)
            for kind, name, message, count in expected.top_errors(current, 5)
        ]

        # Overview -> agent page.
        page.locator("#table-agents a", has_text="planner").click()
        page.wait_for_url("**/agents/planner")
        page.locator("h1", has_text="planner").wait_for()
        planner = [e for e in current if e.kind is Kind.AGENT and e.name == "planner"]
        assert int(t.figure("invocations")) == len(planner)
        assert expected.close_percentile(float(t.figure("p95")), expected.durations(planner), 95)
        p50 = page.locator('table.durations tr[data-key="p50"] td').get_attribute("data-value")
        assert expected.close_percentile(float(p50), expected.durations(planner), 50)
        runs = page.locator("#chart-runs details tbody tr").all()
        assert [
            sum(int(c.get_attribute("data-value")) for c in row.locator("td.num").all())
            for row in runs
        ] == per_day(planner, days)
        tasks = [r.get_attribute("data-task") for r in t.rows("table.tasks tbody tr")]
        assert tasks[0] == "task-tree"
        assert set(tasks) <= {e.task_id for e in planner}

        # Agent -> task: the tree, with its own and inclusive costs.
        page.locator("table.tasks a", has_text="task-tree").click()
        page.wait_for_url("**/tasks/task-tree")
        tree = page.locator("#task-tree tbody tr")
        tree.first.wait_for()
        found = [
            (
                row.locator("td.name a").inner_text(),
                int(row.get_attribute("data-depth")),
                row.locator('td[data-key="own"] span').first.get_attribute("data-value"),
                row.locator('td[data-key="total"] > span').get_attribute("data-value"),
                row.locator('td[data-key="total"] > span').get_attribute("data-unpriced"),
            )
            for row in tree.all()
        ]
        assert found == [
            ("planner", 0, "0.5", "0.875", "1"),
            ("reviewer", 1, "0.25", "0.25", "1"),
            ("pdf", 2, "", "", "1"),
            ("tester", 1, "0.125", "0.125", None),
        ]
        assert tree.nth(2).locator('td[data-key="total"]').inner_text() == f"{UNKNOWN} (1 unpriced)"

        # Back to the agent, back to the overview.
        page.go_back()
        page.wait_for_url("**/agents/planner")
        page.locator("h1", has_text="planner").wait_for()
        page.go_back()
        page.locator("h1", has_text="Overview").wait_for()
        assert page.evaluate("location.pathname") == "/"

        # A name holding '/' has its own page.
        link = page.locator("#table-agents a", has_text="doc/writer")
        assert link.get_attribute("href").startswith("/agents/doc%2Fwriter")
        link.click()
        page.locator("h1", has_text="doc/writer").wait_for()
        writer = [e for e in current if e.name == "doc/writer"]
        assert int(t.figure("invocations")) == len(writer)

        # The period picker puts the period in the URL; a custom range and a project too.
        t.open("/")
        t.figure("invocations")
        page.select_option("#period", "30d")
        page.wait_for_url("**/?period=30d")
        month = in_days(events, last_days(now, 30))
        page.wait_for_function(
            "n => document.querySelector('[data-metric=invocations] .value')?.dataset.value == n",
            arg=len(month),
        )
        before = [d - timedelta(days=7) for d in days]
        t.open(f"/?period=custom&from={before[0]}&to={before[-1]}&project=api")
        page.locator("h1", has_text=f"{before[0]} to {before[-1]}").wait_for()
        assert int(t.figure("invocations")) == len([e for e in previous if e.project_id == "api"])
        assert page.input_value("#project") == "api"

        # Tasks that used a skill, found with the search form; the URL says what was asked.
        t.open("/tasks")
        page.locator("table.tasks tbody tr").first.wait_for()
        assert len(t.rows("table.tasks tbody tr")) == len({e.task_id for e in current})
        page.fill("#task-name", "pdf")
        page.select_option("#task-kind", "skill")
        page.click(".searchbar button[type=submit]")
        page.wait_for_url("**/tasks?*kind=skill*")
        assert "name=pdf" in page.url
        page.locator("h1", has_text="using pdf").wait_for()
        shown = {r.get_attribute("data-task") for r in t.rows("table.tasks tbody tr")}
        assert shown == {e.task_id for e in current if e.name == "pdf"}
        page.fill("#task-id", "task-tree")
        page.press("#task-id", "Enter")
        page.wait_for_url("**/tasks/task-tree*")
        page.locator("#task-tree").wait_for()
        t.check_clean()


def test_a_recorded_event_appears_without_a_reload(browser, seeded) -> None:
    engine, events, now = seeded
    current = in_days(events, last_days(now))
    with server(engine) as running, tab(browser, running.url) as t:
        t.open("/")
        assert int(t.figure("invocations")) == len(current)
        t.page.evaluate("window.stillTheSamePage = true")
        post_event(running.url, name="planner")
        t.page.wait_for_function(
            "n => document.querySelector('[data-metric=invocations] .value')?.dataset.value == n",
            arg=len(current) + 1,
        )
        assert t.page.evaluate("window.stillTheSamePage") is True
        assert "updated" in t.page.locator("#live").inner_text()
        t.check_clean()


def test_a_project_bound_key_is_asked_for_and_sees_its_project_only(browser, seeded) -> None:
    engine, events, now = seeded
    web = [e for e in in_days(events, last_days(now)) if e.project_id == "web"]
    with server(engine, auth="required", auth_cache_seconds=0) as running:
        key = running.key("read", project="web")
        with tab(browser, running.url) as t:
            t.open("/")
            page = t.page
            dialog = page.locator("#key-dialog")
            dialog.wait_for(state="visible")
            page.fill("#key-input", "cc_not_a_key")
            page.press("#key-input", "Enter")
            page.locator("#key-problem", has_text="refused").wait_for()
            page.fill("#key-input", key)
            page.press("#key-input", "Enter")
            assert int(t.figure("invocations")) == len(web)
            assert page.evaluate("sessionStorage.length") == 1
            assert page.evaluate("localStorage.length") == 0
            assert page.context.cookies() == []

            # Another project's agent is unknown to this key.
            t.open("/agents/planner?project=api")
            page.locator(".banner").wait_for()
            t.open("/")
            assert int(t.figure("invocations")) == len(web)
            sent = [r for r in t.requests if r.url.endswith(("/graphql", "/dashboard/version"))]
            with_key = [r for r in sent if r.headers.get("authorization") == f"Bearer {key}"]
            assert len(with_key) >= len(sent) - 1  # the one refused was sent with the bad key
            assert any(r.method == "POST" for r in with_key)

            # A key revoked while the page is open: its next look for new data asks again.
            with Session(engine) as session:
                revoke_key(session, key)
                session.commit()
            dialog.wait_for(state="visible")
            page.locator("#key-problem", has_text="refused").wait_for()
            assert page.evaluate("sessionStorage.length") == 0

            # "Forget key" forgets it.
            page.fill("#key-input", other := running.key("read"))
            page.press("#key-input", "Enter")
            t.figure("invocations")
            assert page.evaluate("Object.values(sessionStorage)") == [other]
            page.click("#key-button")
            dialog.wait_for(state="visible")
            assert page.evaluate("sessionStorage.length") == 0
            # The refused keys' requests are logged by Chromium as failed loads: 401 and 403.
            t.check_clean(allowed=("401", "403"))


def test_the_overview_of_demo_data_at_desktop_and_phone_width(browser, tmp_path: Path) -> None:
    """The README's screenshot, made from `claude-api demo` data with budgets and an alert rule
    set by the CLI (written only when CLAUDE_API_WRITE_SCREENSHOT=1): the server's own
    evaluation fires the rule and the overview shows it; the page fits a phone's width and has
    a dark scheme."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": url}
    cli = [sys.executable, "-m", "claude_api.client"]
    for command in (
        ["demo", "--events", "4000", "--seed", "7"],
        ["budgets", "set", "--agent", "main", "--per", "day", "--usd", "20"],
        ["budgets", "set", "--all", "--per", "month", "--usd", "500", "--action", "warn"],
        ["alerts", "add", "--metric", "failure-rate", "--above", "2%", "--all", "--window", "7d"],
    ):
        subprocess.run(cli + command, env=env, check=True, capture_output=True, timeout=300)
    with serve(create_app(Settings(database_url=url))) as base:
        usage = httpx.post(
            f"{base}/graphql",
            json={"query": "{ names(kind: AGENT) }"},
            timeout=30,
        ).json()["data"]["names"]
        assert usage
        firing = "{ alertRules(state: FIRING) { id } }"
        for _ in range(150):  # the server evaluates the rules as it starts
            answer = httpx.post(f"{base}/graphql", json={"query": firing}, timeout=30).json()
            if answer["data"]["alertRules"]:
                break
            time_module.sleep(0.1)
        with tab(browser, base) as t:
            t.open("/?period=30d")
            t.page.locator("#chart-cost canvas").first.wait_for()
            t.page.locator("#table-agents svg.spark").first.wait_for()
            assert int(t.figure("invocations")) > 0
            assert len(t.rows("#table-budgets tbody tr")) == 2
            assert len(t.rows("#table-alerts tbody tr")) == 1
            if os.environ.get("CLAUDE_API_WRITE_SCREENSHOT") == "1":
                SCREENSHOT.parent.mkdir(exist_ok=True)
                t.page.screenshot(path=str(SCREENSHOT))
            t.page.set_viewport_size({"width": 390, "height": 844})
            t.page.wait_for_timeout(200)  # the charts follow the width on the next frame
            overflow = t.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0
            t.check_clean()
        with tab(browser, base, color_scheme="dark") as t:
            t.open("/?period=30d")
            t.figure("invocations")
            background = t.page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert sum(int(n) for n in background[4:-1].split(",")) < 3 * 64
            t.check_clean()


def test_an_empty_database_and_unknown_names_say_so(browser, engine: Engine) -> None:
    with server(engine) as running, tab(browser, running.url) as t:
        t.open("/")
        assert int(t.figure("invocations")) == 0
        page = t.page
        page.locator("p.note", has_text="claude-api demo").wait_for()
        for metric in ("success-rate", "p95"):
            assert page.locator(f'[data-metric="{metric}"] .value').inner_text() == UNKNOWN
        page.locator("#board-agent", has_text="No agents in this period").wait_for()
        t.open("/agents/nobody?period=bogus")
        page.locator(".banner", has_text="No agent named “nobody”").wait_for()
        t.open("/tasks/no-such-task")
        page.locator(".banner", has_text="No invocation of this task").wait_for()
        t.open("/?period=custom&from=2026-05-02&to=2026-05-01")
        page.locator(".banner", has_text="a custom range needs").wait_for()
        t.check_clean()


# --- budgets and alerts, durations, models, hours ---------------------------------------------


def guardrails(engine: Engine) -> dict[str, int]:
    """Budgets and alert rules of every kind of scope, set as `claude-api budgets set` and
    `alerts add` set them; their ids by a short name."""
    ids = {}
    with Session(write_engine(engine)) as session:
        for label, scope in {
            "planner": {"kind": "agent", "name": "planner", "period": "day", "usd": 0.25},
            "web": {"project_id": "web", "period": "month", "tokens": 10**12, "action": "warn"},
            "api": {"project_id": "api", "period": "day", "usd": 1000.0},
            "all": {"period": "week", "usd": 1000.0, "action": "warn"},
        }.items():
            ids[f"budget {label}"] = set_budget(session, tz="UTC", **scope).budget.id
        for label, rule in {
            "failing": {"metric": "failure_rate", "threshold": 0.01, "window_seconds": 7 * 86400},
            "api failing": {"metric": "failure_rate", "threshold": 0.01,
                            "window_seconds": 7 * 86400, "project_id": "api"},
            "pdf cost": {"metric": "cost", "threshold": 1000.0, "window_seconds": 86400,
                         "kind": "skill", "name": "pdf"},
        }.items():  # fmt: skip
            ids[f"rule {label}"] = add_rule(session, **rule).id
        session.commit()
    return ids


def spent_today(events: list[UsageEvent], now: datetime, **chosen: Any) -> float:
    midnight = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    return sum(
        e.cost_usd or 0
        for e in events
        if midnight <= e.timestamp <= now and all(getattr(e, k) == v for k, v in chosen.items())
    )


def test_the_overview_shows_budgets_and_open_alerts(browser, seeded) -> None:
    engine, events, now = seeded
    ids = guardrails(engine)
    week = [e for e in events if e.timestamp >= now - timedelta(days=7)]
    finished = [e for e in week if e.status is not Status.RUNNING]
    failure_rate = sum(e.status is Status.FAILED for e in finished) / len(finished)
    with server(engine) as running, tab(browser, running.url) as t:
        AlertEvaluator(running.services).evaluate()  # as the server's own loop does after writes
        t.open("/")
        page = t.page
        alerts = page.locator("#table-alerts tbody tr")
        alerts.first.wait_for()
        firing = {int(row.get_attribute("data-rule")) for row in alerts.all()}
        assert firing == {ids["rule failing"], ids["rule api failing"]}  # not pdf's cost
        row = page.locator(f'#table-alerts tr[data-rule="{ids["rule failing"]}"]')
        value = float(row.locator('td[data-key="value"]').get_attribute("data-value"))
        assert value == pytest.approx(failure_rate)
        assert row.locator(".standing").inner_text() == "Firing"

        budgets = {
            int(row.get_attribute("data-budget")): row
            for row in page.locator("#table-budgets tbody tr").all()
        }
        assert set(budgets) == {ids[f"budget {n}"] for n in ("planner", "web", "api", "all")}
        planner = budgets[ids["budget planner"]]
        spent = spent_today(events, datetime.now(UTC), kind=Kind.AGENT, name="planner")
        assert spent > 0.25  # task-tree's planner alone spent $0.50 today
        assert float(planner.locator('td[data-key="spent"]').get_attribute("data-value")) == (
            pytest.approx(spent)
        )
        assert planner.get_attribute("data-standing") == "spent"
        assert "over" in planner.get_attribute("class")  # highlighted, and said in words:
        assert planner.locator('td[data-key="standing"]').inner_text() == "Spent"
        assert planner.locator('td[data-key="remaining"]').inner_text() == "$0.00"
        assert planner.locator('td[data-key="action"]').inner_text() == "deny"
        web = budgets[ids["budget web"]]
        assert web.get_attribute("data-standing") == "within"
        assert web.locator('td[data-key="limit"]').inner_text() == f"{10**12:,}"

        # Each names what it covers: the agent's page, the project's overview.
        planner.locator("a").click()
        page.wait_for_url("**/agents/planner")

        # An agent's or a skill's page shows those covering it (and the URL's project).
        def shown_on(path: str) -> tuple[set[int], set[int]]:
            t.open(path)
            page.locator("#budgets h2").wait_for()
            return (
                {int(r.get_attribute("data-budget")) for r in t.rows("#table-budgets tbody tr")},
                {int(r.get_attribute("data-rule")) for r in t.rows("#table-alerts tbody tr")},
            )

        budgets_of = lambda *names: {ids[f"budget {n}"] for n in names}  # noqa: E731
        rules_of = lambda *names: {ids[f"rule {n}"] for n in names}  # noqa: E731
        assert shown_on("/agents/planner") == (
            budgets_of("planner", "web", "api", "all"),
            rules_of("failing", "api failing"),
        )
        assert shown_on("/skills/commit?project=web") == (
            budgets_of("web", "all"),
            rules_of("failing"),
        )
        t.open("/")
        budgets_web = page.locator(f'#table-budgets tr[data-budget="{ids["budget web"]}"] a')
        assert budgets_web.get_attribute("href") == "/?project=web"

        # With a project chosen, only what covers it: not api's budget nor api's rule.
        t.open("/?project=web")
        page.locator("#table-budgets").wait_for()
        shown = {int(r.get_attribute("data-budget")) for r in t.rows("#table-budgets tbody tr")}
        assert shown == {ids["budget planner"], ids["budget web"], ids["budget all"]}
        rules = {int(r.get_attribute("data-rule")) for r in t.rows("#table-alerts tbody tr")}
        assert rules == {ids["rule failing"]}
        t.check_clean()


def test_a_project_bound_key_sees_its_projects_budgets_only(browser, seeded) -> None:
    engine, _, _ = seeded
    ids = guardrails(engine)
    with server(engine, auth="required", auth_cache_seconds=0) as running:
        AlertEvaluator(running.services).evaluate()
        key = running.key("read", project="api")
        with tab(browser, running.url) as t:
            t.open("/")
            t.page.fill("#key-input", key)
            t.page.press("#key-input", "Enter")
            t.page.locator("#table-budgets").wait_for()
            budgets = {
                int(r.get_attribute("data-budget")) for r in t.rows("#table-budgets tbody tr")
            }
            assert budgets == {ids["budget api"]}
            rules = {int(r.get_attribute("data-rule")) for r in t.rows("#table-alerts tbody tr")}
            assert rules == {ids["rule api failing"]}
            t.check_clean()


def test_an_alert_that_fires_later_appears_without_a_reload(browser, seeded) -> None:
    """An alert fires with no new data (another server process, say): the overview looks at
    its budgets and alerts again on its own, every 30 seconds (the page's clock is driven)."""
    engine, _, _ = seeded
    with server(engine) as running, tab(browser, running.url) as t:
        t.page.clock.install()
        t.open("/")
        t.page.locator("#no-alerts").wait_for()
        guardrails(engine)
        AlertEvaluator(running.services).evaluate()
        for _ in range(40):
            t.page.clock.run_for(2000)
            if t.page.locator("#table-alerts").count():
                break
            t.page.wait_for_timeout(100)
        t.page.locator("#table-alerts tbody tr").first.wait_for()
        t.check_clean()


BIN_EDGES = set(pairwise([0.0, *EDGES, math.inf]))


def priced(costs: Iterator[float | None]) -> float | None:
    """The sum of the known costs (in eighths of a dollar: exact), None when none is known."""
    known = [cost for cost in costs if cost is not None]
    return sum(known) if known else None


def number(value: str | None) -> float | None:
    """A cell's data-value: a number, or "" for unknown."""
    return float(value) if value else None


def test_an_agent_page_shows_its_durations_models_and_tasks(browser, seeded) -> None:
    engine, events, now = seeded
    current = in_days(events, last_days(now))
    planner = [e for e in current if e.kind is Kind.AGENT and e.name == "planner"]
    with server(engine) as running, tab(browser, running.url) as t:
        t.open("/agents/planner")
        page = t.page
        page.locator("#chart-durations canvas").first.wait_for()
        durations = expected.durations(planner)
        bins = []
        for row in t.rows("#chart-durations details tbody tr"):
            high = row.get_attribute("data-max")
            bins.append((
                float(row.get_attribute("data-min")),
                float(high) if high else math.inf,
                int(row.locator("td.num").get_attribute("data-value")),
                row.get_attribute("data-bin"),
            ))  # fmt: skip
        assert sum(count for *_, count, _ in bins) == len(durations)
        assert all(a[1] == b[0] for a, b in pairwise(bins))  # one after another, gaps included
        assert bins[0][0] <= min(durations) * 1.01 and max(durations) <= bins[-1][1] * 1.01
        assert bins[0][2] > 0 and bins[-1][2] > 0  # from the shortest bin used to the longest
        for low, high, count, label in bins:
            assert (low, high) in BIN_EDGES  # the API's 1-2-5 series of seconds
            exact = sum(low <= d < high for d in durations)
            # The rollups' sketches place a duration within 1% of an edge on either side of it.
            near = sum(any(abs(d - e) <= 0.0101 * e for e in (low, high) if 0 < e < math.inf)
                       for d in durations)  # fmt: skip
            assert abs(count - exact) <= near, label
        assert bins[0][3].endswith("s")  # "1-2 s", "< 1 ms", as people read seconds

        # Its models, as recorded: one recorded with none is said so, never dropped.
        runs = Counter(e.model for e in planner)
        assert None in runs and len(runs) == 3
        found = {
            m.get_attribute("data-model"): (
                int(m.locator('td[data-key="invocations"]').get_attribute("data-value")),
                number(m.locator('td[data-key="cost"] > span').get_attribute("data-value")),
                m.locator("td.name").inner_text(),
            )
            for m in t.rows("#table-models tbody tr")
        }
        assert found == {
            (model or ""): (
                count,
                priced(e.cost_usd for e in planner if e.model == model),
                model or "no model recorded",
            )
            for model, count in runs.items()
        }

        tree = page.locator('table.tasks tr[data-task="task-tree"]')
        assert (
            tree.locator('[data-key="status"] [data-status]').get_attribute("data-status")
            == "COMPLETED"
        )
        # From its first start to its last finish: the tester, 30 s in, ran 12.5 s.
        assert float(tree.locator('td[data-key="duration"]').get_attribute("data-value")) == (
            pytest.approx(42.5)
        )
        used = [
            (u.get_attribute("data-kind"), u.get_attribute("data-name"))
            for u in tree.locator("[data-key=used] .used").all()
        ]
        assert used == [("AGENT", "planner"), ("AGENT", "reviewer"), ("AGENT", "tester"),
                        ("SKILL", "pdf")]  # fmt: skip
        tree.locator("[data-key=used] a", has_text="pdf").click()
        page.wait_for_url("**/skills/pdf")
        page.locator("h1", has_text="pdf").wait_for()
        t.check_clean()


def test_the_last_24_hours_by_the_hour(browser, seeded) -> None:
    engine, events, _ = seeded
    with server(engine) as running, tab(browser, running.url) as t:
        t.open("/?period=24h")
        page = t.page
        page.locator("#chart-invocations canvas").first.wait_for()
        rows = t.rows("#chart-invocations details tbody tr")
        assert len(rows) == 24
        starts = [datetime.fromisoformat(r.get_attribute("data-start")) for r in rows]
        assert all(b - a == timedelta(hours=1) for a, b in pairwise(starts))
        assert starts[-1].astimezone(TZ) <= datetime.now(TZ) < starts[-1] + timedelta(hours=1)
        counts = [
            sum(int(c.get_attribute("data-value") or 0) for c in r.locator("td.num").all())
            for r in rows
        ]
        want = [
            len([e for e in events if s <= e.timestamp < s + timedelta(hours=1)]) for s in starts
        ]
        assert counts == want
        assert rows[0].locator("td").first.text_content().endswith(("AM", "PM"))  # a time of day
        page.locator("h1", has_text=f"last 24 hours · {TZ_NAME}").wait_for()  # whose hours
        t.open("/agents/planner?period=24h")
        page.locator("#chart-runs canvas").first.wait_for()
        assert len(t.rows("#chart-runs details tbody tr")) == 24
        t.check_clean()


def test_the_task_list_pages_and_each_page_fits_a_phone(browser, engine: Engine) -> None:
    """61 tasks: 50 on the first page, most recent first, the other 11 after "Next page", whose
    URL can be opened again; the agent, task and task list pages fit a phone's width."""
    now = datetime.now(UTC)
    starts = {f"task-{n:02}": now - timedelta(hours=2, minutes=n) for n in range(61)}
    add_events(engine, *[
        make_event(task_id=task, name="planner", timestamp=at, project_id="web")
        for task, at in starts.items()
    ])  # fmt: skip
    newest_first = sorted(starts, key=starts.get, reverse=True)
    with server(engine) as running, tab(browser, running.url) as t:
        page = t.page
        t.open("/tasks?project=web")
        page.locator("table.tasks tbody tr").first.wait_for()
        first = [r.get_attribute("data-task") for r in t.rows("table.tasks tbody tr")]
        assert first == newest_first[:50]
        assert page.locator(".pager a", has_text="First page").count() == 0
        page.locator(".pager a", has_text="Next page").click()
        page.wait_for_url("**/tasks?*after=*")
        assert "project=web" in page.url
        page.locator(".pager a", has_text="First page").wait_for()
        second = [r.get_attribute("data-task") for r in t.rows("table.tasks tbody tr")]
        assert second == newest_first[50:]
        assert page.locator(".pager a", has_text="Next page").count() == 0
        t.open(page.url.removeprefix(running.url))  # the second page, bookmarked
        page.locator("table.tasks tbody tr").first.wait_for()
        assert [r.get_attribute("data-task") for r in t.rows("table.tasks tbody tr")] == second

        page.set_viewport_size({"width": 390, "height": 844})
        for path, ready in (
            ("/tasks", "table.tasks tbody tr"),
            ("/agents/planner", "#chart-durations canvas"),
            ("/tasks/task-00", "#task-tree tbody tr"),
        ):
            t.open(path)
            page.locator(ready).first.wait_for()
            page.wait_for_timeout(200)  # the charts follow the width on the next frame
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, path
        t.check_clean()


def test_the_first_views_are_ready_before_the_browser_opens_them(browser, seeded) -> None:
    """With the warm-up `claude-api serve` runs once started, the overview of every period and
    the busiest agent's page, opened in a browser of the zone the server prepares, are answered
    from what the warm-up kept: their first load reads no more invocation or rollup rows than
    the load after it (none for the overview; the agent's page lists its recent tasks, which
    are read at each load). A page's ranges or names that differ from what the warm-up asked
    would read more."""
    engine, events, _ = seeded
    read: list[str] = []
    compiled: list[str] = []  # what was read by a statement compiled for the first time

    def note(connection, cursor, statement, parameters, context, executemany) -> None:
        read.extend(USAGE_DATA.findall(statement))
        if context.cache_hit is CacheStats.CACHE_MISS:
            compiled.extend(USAGE_DATA.findall(statement))

    def reads_of(t: Tab, path: str) -> list[str]:
        read.clear()
        t.open(path)
        t.figure("invocations")
        t.page.wait_for_load_state("networkidle")
        return sorted(read)

    settings = {"dashboard_warm_up": True, "time_zones": [TZ_NAME]}
    with server(engine, **settings) as running, tab(browser, running.url) as t:
        deadline = time_module.monotonic() + 60
        while running.app.state.warmer.rounds == 0:
            assert time_module.monotonic() < deadline, "the warm-up did not finish"
            time_module.sleep(0.05)
        busiest = Counter(e.name for e in events if e.kind is Kind.AGENT).most_common(1)[0][0]
        sqlalchemy.event.listen(engine, "before_cursor_execute", note)
        try:
            paths = ["/", *(f"/?period={period}" for period in ("24h", "30d", "90d"))]
            for path in paths:
                assert reads_of(t, path) == [], path
            agent_page = f"/agents/{quote(busiest, safe='')}?period=30d"
            first = reads_of(t, agent_page)
            assert first == reads_of(t, agent_page)
            # A session records an invocation: each view reads again what may have changed
            # (its last days), in statements the warm-up has compiled already.
            t.page.goto("about:blank")
            post_event(running.url, name=busiest)
            for path in [*paths, agent_page]:
                compiled.clear()
                assert reads_of(t, path) != [], path
                assert compiled == [], path
        finally:
            sqlalchemy.event.remove(engine, "before_cursor_execute", note)
        t.check_clean()
