"""Alerts on SQLite and PostgreSQL against a real webhook receiver on loopback: a rule fires
once and resolves once however often it is evaluated, a receiver that fails twice still gets
the event (once), a burst of writes does not make a storm of evaluations, two server processes
record and deliver each firing once, and the server, the CLI, GraphQL and REST manage rules."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.errors import InvalidFilter
from claude_api.events import Status
from claude_api.models.alerts import AlertState, Change, Delivery, Metric, add_rule
from claude_api.models.db import make_engine, write_engine
from claude_api.models.queries.alerts import alert_history, list_rules, measure_rule
from claude_api.server.alerting import AlertEvaluator
from claude_api.server.app import create_app
from claude_api.server.services import Services
from claude_api.tracking import build_tracker
from tests.auth_support import secured_server
from tests.factories import add_events, make_event
from tests.live_server import serve

FAST = {"min_interval": 0.3, "idle_interval": 30.0, "poll": 0.05, "retry_delays": (0.05, 0.1, 0.2)}


class Receiver:
    """A webhook receiver on loopback: records every POST; answers 500 to the first `fail`."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if len(receiver.answers) < receiver.fail else 200
                receiver.answers.append(status)
                if status == 200:
                    receiver.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T000/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@contextmanager
def server_services(engine: Engine) -> Iterator[Services]:
    """The services a server process would have on `engine`'s database."""
    url = engine.url.render_as_string(hide_password=False)
    own = make_engine(url)
    services = Services(
        settings=Settings(database_url=url),
        engine=own,
        tracker=build_tracker(own, load_entrypoints=False, retry_delays=()),
    )
    try:
        yield services
    finally:
        services.close()


@contextmanager
def evaluating(services: Services, **options: Any) -> Iterator[AlertEvaluator]:
    """An evaluator running on its own event loop, as in the server, until the block ends."""
    evaluator = AlertEvaluator(services, **{**FAST, **options})
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()

    def run() -> None:
        loop.run_until_complete(evaluator.run(stopping))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield evaluator
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(30)
        loop.close()


def _rule(engine: Engine, **fields: Any) -> int:
    values: dict[str, Any] = dict(metric=Metric.FAILURE_RATE, threshold=0.5, window_seconds=3600,
                                  kind="agent", name="code-reviewer", min_sample=4)  # fmt: skip
    values.update(fields)
    with Session(write_engine(engine)) as session:
        rule = add_rule(session, **values)
        session.commit()
    return rule.id


def _runs(engine: Engine, *statuses: Status, **fields: Any) -> None:
    now = datetime.now(UTC)
    add_events(
        engine,
        *(
            make_event(event_id=uuid.uuid4(), timestamp=now - timedelta(minutes=5), status=status,
                       error_message="boom" if status is Status.FAILED else None, **fields)
            for status in statuses
        ),
    )  # fmt: skip


def _history(engine: Engine) -> list[Any]:
    with Session(engine) as session:
        return list(reversed(alert_history(session)))


def test_a_rule_fires_once_and_resolves_once(engine: Engine, receiver: Receiver) -> None:
    rule_id = _rule(engine, webhook_url=receiver.url)
    with server_services(engine) as services, evaluating(services) as evaluator:
        wait_for(lambda: evaluator.evaluations == 1)  # the first, when it starts
        _runs(engine, Status.FAILED, Status.FAILED, Status.FAILED)  # 3 of 3: under the sample
        wait_for(lambda: evaluator.evaluations == 2)
        assert receiver.bodies == []

        _runs(engine, Status.FAILED, Status.COMPLETED)  # 4 of 5 failed: 80%
        wait_for(lambda: len(receiver.bodies) == 1)
        fired = receiver.bodies[0]
        assert fired["change"] == "fired" and fired["rule_id"] == rule_id
        assert fired["value"] == pytest.approx(4 / 5) and fired["sample"] == 5
        assert fired["text"] == (
            ":rotating_light: FIRING: failure rate of agent code-reviewer over the last 1h is "
            f"80.0% (5 invocations), above 50.0% (rule {rule_id})"
        )

        # More failures, evaluated again and again: still the one firing.
        for _ in range(3):
            before = evaluator.evaluations
            _runs(engine, Status.FAILED)
            wait_for(lambda before=before: evaluator.evaluations > before)
        assert len(receiver.bodies) == 1

        _runs(engine, *[Status.COMPLETED] * 6)  # 7 of 14 failed: 50%, not above
        wait_for(lambda: len(receiver.bodies) == 2)
        resolved = receiver.bodies[1]
        assert resolved["change"] == "resolved" and resolved["value"] == pytest.approx(0.5)
        assert resolved["text"].startswith(":white_check_mark: RESOLVED: failure rate of agent")
        before = evaluator.evaluations
        _runs(engine, Status.COMPLETED)
        wait_for(lambda: evaluator.evaluations > before)
    assert len(receiver.bodies) == 2
    history = _history(engine)
    assert [(e.change, e.delivery, e.attempts) for e in history] == [
        (Change.FIRED, Delivery.DELIVERED, 1), (Change.RESOLVED, Delivery.DELIVERED, 1),
    ]  # fmt: skip
    assert [e.message for e in history] == [body["text"] for body in receiver.bodies]
    with Session(engine) as session:
        [rule] = list_rules(session)
    assert (rule.state, rule.value) == (AlertState.OK, pytest.approx(7 / 15))


def test_a_receiver_that_fails_twice_gets_the_event_once(engine: Engine) -> None:
    receiver = Receiver(fail=2)
    try:
        _rule(engine, webhook_url=receiver.url, min_sample=1)
        _runs(engine, Status.FAILED)
        with server_services(engine) as services, evaluating(services):
            wait_for(lambda: len(receiver.bodies) == 1)
            time.sleep(0.5)  # nothing more comes
        assert receiver.answers == [500, 500, 200]
        [event] = _history(engine)
        assert (event.delivery, event.attempts, event.last_error) == (Delivery.DELIVERED, 3, None)
    finally:
        receiver.close()


def test_a_receiver_that_never_answers_leaves_the_event_failed(engine: Engine) -> None:
    receiver = Receiver(fail=10)
    try:
        _rule(engine, webhook_url=receiver.url, min_sample=1)
        _runs(engine, Status.FAILED)
        with server_services(engine) as services, evaluating(services):
            wait_for(lambda: _history(engine) and _history(engine)[0].delivery is Delivery.FAILED)
        [event] = _history(engine)
        assert (event.attempts, event.last_error) == (4, "HTTP 500: ")
        assert receiver.answers == [500] * 4
    finally:
        receiver.close()


def test_a_burst_of_writes_is_not_a_storm(engine: Engine, receiver: Receiver) -> None:
    _rule(engine, webhook_url=receiver.url, min_sample=1)
    interval = 0.5
    with server_services(engine) as services, evaluating(services, min_interval=interval) as ev:
        wait_for(lambda: ev.evaluations >= 1)
        started, before = time.monotonic(), ev.evaluations
        for _ in range(60):  # 60 writes, each a new data version, over a second or more
            _runs(engine, Status.FAILED)
        elapsed = time.monotonic() - started
        wait_for(lambda: len(receiver.bodies) == 1)
        time.sleep(interval * 2)
        evaluations = ev.evaluations - before
    # At most one evaluation per interval while the writes went on, and one after.
    assert 1 <= evaluations <= elapsed / interval + 3, (evaluations, elapsed)
    assert len(receiver.bodies) == 1


def test_two_server_processes_record_and_deliver_a_firing_once(
    engine: Engine, receiver: Receiver
) -> None:
    _rule(engine, webhook_url=receiver.url, min_sample=1)
    _runs(engine, Status.FAILED)
    with (
        server_services(engine) as one,
        server_services(engine) as other,
        evaluating(one),
        evaluating(other),
    ):
        wait_for(lambda: len(receiver.bodies) == 1)
        time.sleep(1.0)
    assert len(receiver.bodies) == 1
    assert [event.change for event in _history(engine)] == [Change.FIRED]


def test_cost_and_p95_rules_measure_their_window(engine: Engine) -> None:
    now = datetime.now(UTC)
    inside = [(1.25, 10.0), (2.5, 20.0), (0.25, 300.0)]
    add_events(
        engine,
        *(make_event(event_id=uuid.uuid4(), timestamp=now - timedelta(minutes=20), cost_usd=cost,
                     duration_seconds=seconds) for cost, seconds in inside),
        make_event(timestamp=now - timedelta(hours=3), cost_usd=100.0, duration_seconds=9999.0),
        make_event(timestamp=now - timedelta(minutes=1), status=Status.RUNNING, cost_usd=0.5),
    )  # fmt: skip
    cost = _rule(engine, metric=Metric.COST, threshold=4.0, min_sample=1)
    p95 = _rule(engine, metric=Metric.P95_DURATION, threshold=60.0, min_sample=3)
    with Session(engine) as session:
        rules = {rule.id: rule for rule in list_rules(session)}
        spent = measure_rule(session, rules[cost], now=now)
        slowest = measure_rule(session, rules[p95], now=now)
    assert (spent.value, spent.sample) == (1.25 + 2.5 + 0.25 + 0.5, 4)  # the running one too
    # Nearest rank over 3 finished durations: the largest; the sketch is within 1%.
    assert slowest.sample == 3 and slowest.value == pytest.approx(300.0, rel=0.01)
    assert spent.breaches(rules[cost]) and slowest.breaches(rules[p95])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"window_seconds": 30}, "window_seconds"),
        ({"window_seconds": 40 * 86_400}, "window_seconds"),
        ({"min_sample": 0}, "min_sample"),
        ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
        ({"webhook_url": "http:// spaces"}, "webhook_url"),
        ({"kind": None}, "name"),
        ({"metric": "latency"}, "metric"),
    ],
)
def test_bad_rules_are_refused(engine: Engine, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFilter) as refused:
        _rule(engine, **fields)
    assert refused.value.field == field
    with Session(engine) as session:
        assert list_rules(session) == []


def test_the_server_evaluates_rules_made_over_its_surfaces(
    engine: Engine, receiver: Receiver
) -> None:
    with secured_server(engine) as server:
        admin, read = server.key("admin"), server.key("read")
        added = server.post(
            "/v1/alerts",
            {"metric": "failure_rate", "threshold": 0.25, "window_seconds": 3600, "kind": "agent",
             "name": "code-reviewer", "min_sample": 2, "webhook_url": receiver.url},
            admin,
        )  # fmt: skip
        assert added.status_code == 200, added.text
        rule = added.json()
        assert rule["webhook"] == receiver.url.split("/hooks")[0]  # the secret path not shown
        assert server.post("/v1/alerts", {"metric": "cost"}, read).status_code == 403
        _runs(engine, Status.FAILED, Status.COMPLETED)
        wait_for(lambda: len(receiver.bodies) == 1, timeout=30)  # the server's own evaluator

        [listed] = server.get("/v1/alerts", read).json()["items"]
        assert (listed["id"], listed["state"]) == (rule["id"], "firing")

        # The server records the delivery once the receiver has answered: a moment after the
        # receiver holds the body.
        def history() -> list[dict]:
            return server.get("/v1/alerts/history", read).json()["items"]

        wait_for(lambda: [event["delivery"] for event in history()] != ["sending"], timeout=30)
        [event] = history()
        assert (event["change"], event["delivery"]) == ("fired", "delivered")
        graph = server.data("query { alertRules { id state label } }", read)["alertRules"]
        assert graph == [{"id": rule["id"], "state": "FIRING", "label": rule["label"]}]
        removed = httpx.delete(
            f"{server.url}/v1/alerts/{rule['id']}", headers={"Authorization": f"Bearer {admin}"}
        )
        assert removed.status_code == 200
        assert server.get("/v1/alerts", read).json() == {"items": []}
        assert len(server.get("/v1/alerts/history", read).json()["items"]) == 1  # it stays


def test_alerts_commands(engine: Engine, receiver: Receiver) -> None:
    from typer.testing import CliRunner

    from claude_api.client.app import app

    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url)
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    services = Services(settings=settings, engine=engine, tracker=tracker)
    try:
        with serve(create_app(settings, services=services)) as base:
            for surface in (base, None):
                env = {"CLAUDE_API_DATABASE_URL": url, "CLAUDE_API_URL": surface, "COLUMNS": "80"}
                added = CliRunner().invoke(
                    app,
                    ["alerts", "add", "--metric", "failure-rate", "--above", "20%", "--agent",
                     "code-reviewer", "--window", "30m", "--min-runs", "3", "--webhook",
                     receiver.url, "--json"],
                    env=env,
                )  # fmt: skip
                assert added.exit_code == 0, added.output
                made = json.loads(added.stdout)
                assert (made["threshold"], made["windowSeconds"], made["minSample"]) == (
                    0.2, 1800, 3,
                )  # fmt: skip
                listed = CliRunner().invoke(app, ["alerts", "list", "--json"], env=env)
                [rule] = json.loads(listed.stdout)
                assert rule["label"] == ("failure rate of agent code-reviewer over 30m above 20.0%")
                assert rule["webhook"] == receiver.url.split("/hooks")[0]
                table = CliRunner().invoke(app, ["alerts", "list"], env=env)
                assert table.exit_code == 0 and "failure rate of agent" in table.stdout
                removed = CliRunner().invoke(app, ["alerts", "remove", str(made["id"])], env=env)
                assert removed.exit_code == 0
                history = CliRunner().invoke(app, ["alerts", "history"], env=env)
                assert history.exit_code == 0 and "no alert has fired yet" in history.stderr
            bad = CliRunner().invoke(
                app, ["alerts", "add", "--metric", "cost", "--above", "5%", "--all"], env=env
            )
            assert bad.exit_code == 2
    finally:
        tracker.close()
