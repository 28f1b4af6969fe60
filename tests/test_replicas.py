"""Several `claude-api serve` processes on one PostgreSQL database: started together they migrate
once; an event one of them acknowledged is in the next answer of any other (kept responses
included); purges of several processes never collide."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from claude_api.events import Status, UsageEvent
from claude_api.models.db import head_revision, make_engine, upgrade
from claude_api.models.retention import purge
from claude_api.plugins.http_sink import to_wire
from tests import expected
from tests.factories import BASE_TIME, add_events, make_event, make_events
from tests.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[1]
ANALYTICS = "/v1/agents/code-reviewer/analytics"
STATS = """query ($name: String!) { agent(name: $name) { invocations completed failed
  totalCostUsd inputTokens outputTokens } }"""


def _start_together(servers: list[ServerProcess]) -> None:
    errors: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start()
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.fixture
def replicas(postgresql_url: str, tmp_path: Path) -> Any:
    """Replica `a` (two worker processes) and replica `b`, started at once on an empty schema."""
    a = ServerProcess(postgresql_url, tmp_path / "a.log", arguments=("--workers", "2"))
    b = ServerProcess(postgresql_url, tmp_path / "b.log")
    try:
        _start_together([a, b])
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_replicas_started_together_migrate_once(replicas: Any, postgresql_url: str) -> None:
    engine = make_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert [row[0] for row in versions] == [head_revision()]
    finally:
        engine.dispose()


def _round(index: int) -> list[UsageEvent]:
    """Events of one write: a few finished and failed reviewer calls, another agent's call."""
    at = BASE_TIME + timedelta(hours=index)
    return [
        *make_events(index + 1, start=at, cost_usd=0.1 * (index + 1), input_tokens=100 + index),
        make_event(timestamp=at, status=Status.FAILED, error_message="timeout", cost_usd=None),
        make_event(timestamp=at, name="debugger", cost_usd=1.0),
    ]


def _ask(server: ServerProcess, times: int) -> list[tuple[httpx.Response, httpx.Response]]:
    """The REST analytics and the GraphQL stats of code-reviewer, asked `times` times (a
    server of two workers answers from either)."""
    question = {"query": STATS, "variables": {"name": "code-reviewer"}}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return [
            (client.get(ANALYTICS), client.post("/graphql", json=question)) for _ in range(times)
        ]


def _answers(server: ServerProcess, times: int) -> list[tuple[Any, Any]]:
    answers = []
    for rest, graph in _ask(server, times):
        assert rest.status_code == 200 and graph.status_code == 200, (rest.text, graph.text)
        answers.append((rest.json(), graph.json()["data"]["agent"]))
    return answers


def test_an_event_acknowledged_by_one_replica_is_in_the_next_answer_of_any(
    replicas: Any,
) -> None:
    a, b = replicas
    stored: list[UsageEvent] = []
    for index in range(6):
        writer, reader = (a, b) if index % 2 == 0 else (b, a)
        _ask(reader, 4)  # each process keeps its answers and responses of the data now
        events = _round(index)
        sent = httpx.post(
            f"{writer.url}/v1/events", json={"events": [to_wire(e) for e in events]}, timeout=30
        )
        assert sent.status_code == 200, sent.text
        stored += events

        reviewer = [event for event in stored if event.name == "code-reviewer"]
        wanted = expected.totals(reviewer)
        for server in (a, b):
            for rest, graph in _answers(server, 4):
                assert rest["invocations"] == graph["invocations"] == wanted["invocations"]
                assert rest["failed"] == graph["failed"] == wanted["failed"]
                assert rest["input_tokens"] == graph["inputTokens"] == wanted["input_tokens"]
                assert rest["total_cost_usd"] == pytest.approx(wanted["total_cost_usd"])
                assert graph["totalCostUsd"] == pytest.approx(wanted["total_cost_usd"])


# ---- purges ----------------------------------------------------------------------------------

PURGER = """
import json, sys
from datetime import UTC, datetime
from claude_api.models.db import make_engine
from claude_api.models.retention import purge
engine = make_engine(sys.argv[1])
sys.stdin.readline()  # go
result = purge(engine, raw_retention_days=30, rollup_retention_days=None,
               now=datetime(2026, 9, 1, tzinfo=UTC), batch_size=200)
print(json.dumps({"agents": result.agent_rows, "skipped": result.skipped}))
"""


def test_concurrent_purges_do_not_collide(postgresql_url: str) -> None:
    """Three processes purge at once: May has a partition of its own (detached and dropped
    whole), June's rows wait in the DEFAULT partition (deleted in batches)."""
    engine = make_engine(postgresql_url)
    upgrade(engine)
    may = make_events(6000, start=BASE_TIME, step=timedelta(seconds=10))
    young = make_events(5, start=BASE_TIME + timedelta(days=200))
    add_events(engine, *may, *young)
    # The server's maintenance: the months that reached the DEFAULT partition get their own.
    purge(engine, raw_retention_days=None, rollup_retention_days=None)
    june = make_events(1500, start=BASE_TIME + timedelta(days=40), step=timedelta(seconds=10))
    add_events(engine, *june)
    old = [*may, *june]
    with engine.connect() as connection:
        placed = dict(
            connection.execute(
                sa.text(
                    "SELECT date_trunc('month', timestamp, 'UTC')::date::text, "
                    "tableoid::regclass::text FROM agent_usage WHERE timestamp < '2026-07-01' "
                    "GROUP BY 1, 2"
                )
            ).all()
        )
    assert placed == {"2026-05-01": "agent_usage_p2026_05", "2026-06-01": "agent_usage_default"}
    purgers = [
        subprocess.Popen(
            [sys.executable, "-c", PURGER, postgresql_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    try:
        for purger in purgers:
            assert purger.stdin is not None
            purger.stdin.write("go\n")
            purger.stdin.flush()
        outcomes = []
        for purger in purgers:
            out, err = purger.communicate(timeout=300)
            assert purger.returncode == 0, err
            outcomes.append(json.loads(out))
    finally:
        for purger in purgers:
            purger.kill()
    # One purge at a time: together they deleted each old row once, and the rest waited or
    # stood aside; none failed.
    assert sum(outcome["agents"] for outcome in outcomes) == len(old)
    assert any(outcome["agents"] == len(old) for outcome in outcomes)
    with engine.connect() as connection:
        left = connection.execute(sa.text("SELECT count(*) FROM agent_usage")).scalar()
        leftover = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_class WHERE relname LIKE '%usage%2026_05' "
                "AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = "
                "current_schema())"
            )
        ).scalar()
        registered = connection.execute(sa.text("SELECT count(*) FROM invocation_ids")).scalar()
    assert left == registered == len(young)
    assert leftover == 0  # May's partition, detached and dropped once, by one of them
    engine.dispose()
