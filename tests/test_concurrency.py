"""Many writers at once on one database (a SQLite file, a PostgreSQL schema), each in its own
process where the GIL would hide a race: no error, no event lost or doubled, totals exact.
Also: processes that start at once on a new database migrate it once, without failing."""

from __future__ import annotations

import itertools
import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.importer.settlement import IMPORT_NAMESPACE
from claude_api.models import queries
from claude_api.models.db import current_revision, head_revision, make_engine, upgrade
from claude_api.models.filters import UsageFilter
from claude_api.models.tables import AgentUsage, SkillUsage
from tests.auth_support import bearer, secured_server
from tests.factories import add_events, make_event
from tests.fake_claude import FakeClaude
from tests.fake_claude import scenarios as sc
from tests.planned_events import START, Invocation, invocations
from tests.server_process import server_process
from tests.test_executor import streamed_tokens, tokens_of
from tests.test_ingest import wire_event
from tests.transcripts import Ledger, Transcript, skill_call, text_block
from tests.writer_process import WriterProcess

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")

EXECUTOR_PROCESSES = 2  # writers 1-2: run_task with the fake claude, two threads each
EXECUTOR_THREADS = 2
TASKS_PER_EXECUTOR = 4
HTTP_WRITERS = 4  # writers 3-6: client threads posting batches to a server process
HTTP_INVOCATIONS = 1_200
HTTP_BATCH = 50
BULK_INVOCATIONS = 3_000  # writer 7: Tracker.emit of starts, finishes and repeats
IMPORT_SESSIONS = 150  # writer 8: import_transcripts of composed sessions


# ---- what the writers send, and what must be stored --------------------------------------------


def http_batches(planned: list[Invocation], writers: int) -> list[list[list[dict[str, Any]]]]:
    """Each writer's batches: a start and its finish go to different writers (so either may
    arrive first), some finishes and starts are sent again by a third writer, a tenth of the
    invocations is sent as a finish only, and some batches hold one event twice."""
    rng = random.Random(7)
    per_writer: list[list[dict[str, Any]]] = [[] for _ in range(writers)]
    for index, invocation in enumerate(planned):
        if index % 10 != 0:
            per_writer[index % writers].append(invocation.start)
        per_writer[(index + 1) % writers].append(invocation.finish)
        if index % 7 == 0:
            per_writer[(index + 2) % writers].append(invocation.finish)
        if index % 11 == 0:
            per_writer[(index + 3) % writers].append(invocation.start)
        if index % 13 == 0:
            per_writer[(index + 1) % writers].append(invocation.finish)
    batches = []
    for events in per_writer:
        rng.shuffle(events)
        batches.append([events[i : i + HTTP_BATCH] for i in range(0, len(events), HTTP_BATCH)])
    return batches


def bulk_events(planned: list[Invocation]) -> list[dict[str, Any]]:
    """Starts, then finishes a little later, some finishes and starts repeated (a runner's
    retry), in one stream as a long-running process emits them."""
    events: list[dict[str, Any]] = []
    for index, invocation in enumerate(planned):
        events.append(invocation.start)
        if index >= 5:
            events.append(planned[index - 5].finish)
        if index % 9 == 0:
            events.append(invocation.start)
        if index >= 6 and index % 17 == 0:
            events.append(planned[index - 6].finish)
    events += [invocation.finish for invocation in planned[-5:]]
    return events


def compose_sessions(root: Path, count: int) -> Ledger:
    """`count` finished Claude Code sessions: a prompt, three responses, one skill call."""
    ledger = Ledger()
    for index in range(count):
        session_id = str(uuid.UUID(int=index + 1, version=4))
        cwd = f"/home/dev/project{index % 4}"
        main = Transcript(
            ledger, session_id=session_id, cwd=cwd, start=START + timedelta(minutes=index)
        )
        main.prompt("Fix lint")
        main.respond(text_block("Looking."), usage=(10 + index, 100, 1000 + index, 200))
        lint = skill_call("lint-fix")
        main.respond(lint, usage=(8, 30 + index, 1900, 0))
        main.skill_result(lint["id"], "lint-fix")
        main.respond(text_block("Fixed."), usage=(9, 220, 2000, 150 + index))
        main.write(root / cwd.replace("/", "-") / f"{session_id}.jsonl")
    return ledger


def executor_expected_tokens(script: sc.Script) -> int:
    """Tokens one task of `script` records over all its rows: the main loop's (its result),
    each subagent's streamed responses; the skill row carries none of its own."""
    main = tokens_of([script.messages[-1]["usage"]])
    parts = [main, streamed_tokens(script, sc.REVIEWER), streamed_tokens(script, sc.EXPLORER)]
    return sum(sum(part.values()) for part in parts)


# ---- reading back ------------------------------------------------------------------------------


def stored_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every usage row of both tables, with its kind and name."""
    found = []
    with engine.connect() as connection:
        for kind, table, name in (
            ("agent", AgentUsage.__table__, "agent_name"),
            ("skill", SkillUsage.__table__, "skill_name"),
        ):
            for row in connection.execute(sa.select(table)):
                data = dict(row._mapping)
                found.append({**data, "kind": kind, "name": data[name]})
    return found


def as_expected(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["kind"], row["status"], row["cost_usd"], row["input_tokens"], row["output_tokens"])


def tokens(rows: list[dict[str, Any]]) -> int:
    return sum(row[column] or 0 for row in rows for column in TOKEN_COLUMNS)


# ---- writers -----------------------------------------------------------------------------------


@pytest.fixture
def children() -> Iterator[list[WriterProcess]]:
    """Writer processes, killed at the end whatever happened."""
    started: list[WriterProcess] = []
    yield started
    for child in started:
        child.kill()


def post_batches(url: str, batches: list[list[dict[str, Any]]]) -> list[tuple[int, str]]:
    """Post each batch once; the status and (when not 200) the body of every answer."""
    answers = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for batch in batches:
            response = client.post("/v1/events", json={"events": batch})
            ok = response.status_code == 200 and response.json() == {"received": len(batch)}
            answers.append((response.status_code, "" if ok else response.text[:500]))
    return answers


def test_eight_writers_at_once(
    database_url: str, tmp_path: Path, children: list[WriterProcess]
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    script = sc.success()
    claude_bin = str(FakeClaude(tmp_path / "fake-claude").install(script))

    http_planned = invocations(HTTP_INVOCATIONS, source="http-ingest", seed=1)
    bulk_planned = invocations(BULK_INVOCATIONS, source="bulk-emit", seed=2)
    events_path = tmp_path / "bulk-events.json"
    bulk_stream = bulk_events(bulk_planned)
    events_path.write_text(json.dumps(bulk_stream), encoding="utf-8")
    transcripts = tmp_path / "transcripts"
    ledger = compose_sessions(transcripts, IMPORT_SESSIONS)

    # A task id is the id of the Claude Code session it runs as: a UUID.
    task_ids = [str(uuid.uuid4()) for _ in range(EXECUTOR_PROCESSES * TASKS_PER_EXECUTOR)]
    for number in range(EXECUTOR_PROCESSES):
        spec = {
            "database_url": database_url,
            "claude_bin": claude_bin,
            "prompt": "Fix lint",
            "project_id": "executor-project",
            "threads": EXECUTOR_THREADS,
            "task_ids": task_ids[number * TASKS_PER_EXECUTOR : (number + 1) * TASKS_PER_EXECUTOR],
        }
        children.append(WriterProcess("executor", spec, tmp_path, f"executor-{number}"))
    bulk_spec = {"database_url": database_url, "events_path": str(events_path)}
    children.append(WriterProcess("bulk", bulk_spec, tmp_path, "bulk"))
    import_spec = {"database_url": database_url, "root": str(transcripts)}
    children.append(WriterProcess("import", import_spec, tmp_path, "import"))

    batches = http_batches(http_planned, HTTP_WRITERS)
    with server_process(database_url, tmp_path / "server.log") as server:
        for child in children:
            child.start()
        for child in children:
            child.wait_ready()
        with ThreadPoolExecutor(HTTP_WRITERS) as pool:
            for child in children:
                child.go()
            posting = [pool.submit(post_batches, server.url, mine) for mine in batches]
            answers = list(itertools.chain.from_iterable(f.result(120) for f in posting))
        results = {child.name: child.result(120) for child in children}
    server_log = server.log()

    # Zero errors: every request acknowledged, every writer stored all it emitted, no retry.
    assert [answer for answer in answers if answer[0] != 200] == []
    assert len(answers) == sum(len(mine) for mine in batches)
    for name, result in results.items():
        stats = result["stats"]
        assert result["closed"], name
        assert result["warnings"] == [], name
        assert stats["dropped"] == 0 and stats["plugin_failures"] == {}, name
        assert stats["stored"] == stats["emitted"] > 0, name
    assert "Traceback" not in server_log and "ERROR" not in server_log, server_log[-3000:]
    executed = [
        task for n in range(EXECUTOR_PROCESSES) for task in results[f"executor-{n}"]["outcome"]
    ]
    assert [task["status"] for task in executed] == ["completed"] * len(task_ids)
    assert results["bulk"]["stats"]["emitted"] == len(bulk_stream)
    assert results["import"]["outcome"]["events_not_stored"] == 0

    rows = stored_rows(engine)
    with Session(engine) as session:
        # Over whole UTC days, so that the query reads the rollups the writers kept up to date.
        until = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        span = UsageFilter(since=datetime(2000, 1, 1, tzinfo=UTC), until=until + timedelta(2))
        summary = queries.usage_stats(session, filter=span, top_errors=0)
    engine.dispose()
    # No event twice, in one table or across the two.
    ids = Counter(row["event_id"] for row in rows)
    assert [event_id for event_id, n in ids.items() if n > 1] == []
    assert [row["event_id"] for row in rows if row["status"] == "running"] == []
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    assert set(by_source) == {"http-ingest", "bulk-emit", "executor", "transcript-import"}

    # HTTP and bulk: exactly the planned rows, each with its finish's values (never summed).
    for source, planned in (("http-ingest", http_planned), ("bulk-emit", bulk_planned)):
        found = {row["event_id"]: as_expected(row) for row in by_source[source]}
        assert found == {invocation.event_id: invocation.expected() for invocation in planned}

    # Executor: the task and its two subagents and one skill, per task, with exact spend.
    executor_rows = by_source["executor"]
    expected_ids = set()
    for task in executed:
        # The ids the transcript import gives the same session's main thread and calls.
        session = uuid.uuid5(IMPORT_NAMESPACE, task["task_id"])
        expected_ids |= {uuid.UUID(task["event_id"]), uuid.uuid5(session, "main")}
        expected_ids |= {uuid.uuid5(session, t) for t in (sc.REVIEWER, sc.EXPLORER, sc.LINT_SKILL)}
    assert {row["event_id"] for row in executor_rows} == expected_ids
    for task_id in task_ids:
        mine = [row for row in executor_rows if row["task_id"] == task_id]
        assert sorted((row["kind"], row["name"]) for row in mine) == [
            ("agent", "Explore"),
            ("agent", "code-reviewer"),
            ("agent", "main"),
            ("skill", "lint-fix"),
        ]
        cost = sum(row["cost_usd"] for row in mine if row["kind"] == "agent")
        assert cost == pytest.approx(sc.SUCCESS_TOTAL_COST, rel=1e-9)
        assert tokens(mine) == executor_expected_tokens(script)

    # Import: a main thread and a skill per session, every response counted once.
    imported = by_source["transcript-import"]
    assert len({row["task_id"] for row in imported}) == IMPORT_SESSIONS
    assert Counter(row["kind"] for row in imported) == {
        "agent": IMPORT_SESSIONS,
        "skill": IMPORT_SESSIONS,
    }
    assert tokens(imported) == ledger.total_tokens()

    # Totals over everything, as the writers sent them.
    planned_all = http_planned + bulk_planned
    expected_cost = (
        sum(invocation.finish["cost_usd"] for invocation in planned_all)
        + len(task_ids) * sc.SUCCESS_TOTAL_COST
        + ledger.total_cost()
    )
    assert sum(row["cost_usd"] or 0.0 for row in rows) == pytest.approx(expected_cost, rel=1e-9)
    expected_tokens = (
        sum(i.finish["input_tokens"] + i.finish["output_tokens"] for i in planned_all)
        + len(task_ids) * executor_expected_tokens(script)
        + ledger.total_tokens()
    )
    assert tokens(rows) == expected_tokens

    # The rollups, kept by each writer's transaction, agree with the raw rows.
    statuses = Counter(row["status"] for row in rows)
    assert (summary.invocations, summary.completed, summary.failed, summary.running) == (
        len(rows),
        statuses["completed"],
        statuses["failed"],
        0,
    )
    assert summary.total_cost_usd == pytest.approx(expected_cost, rel=1e-9)
    assert summary.input_tokens == sum(row["input_tokens"] or 0 for row in rows)
    assert summary.output_tokens == sum(row["output_tokens"] or 0 for row in rows)


# ---- migrations ----------------------------------------------------------------------------------


def test_processes_starting_at_once_migrate_a_new_database_once(
    database_url: str, tmp_path: Path, children: list[WriterProcess]
) -> None:
    """Replicas (or `claude-api run`s) that start together on a new database: each runs the
    migrations on start; none may fail, and the schema ends at head."""
    for number in range(4):
        spec = {"database_url": database_url}
        children.append(WriterProcess("migrate", spec, tmp_path, f"migrate-{number}"))
    for child in children:
        child.start()
    for child in children:
        child.wait_ready()
    for child in children:
        child.go()
    outcomes = [child.result(60)["outcome"] for child in children]
    assert outcomes == [head_revision()] * len(children)
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


# ---- merges under concurrent writers -------------------------------------------------------

RACED_IDS = 40


def test_a_racing_takeover_never_merges_into_another_projects_invocation(engine: Engine) -> None:
    """The owner's start and another project's finish of the same new ids, sent at the same
    moment: for each id exactly one is stored whole and the other refused with 409."""
    event_ids = [uuid.uuid4() for _ in range(RACED_IDS)]
    with secured_server(engine) as server:
        owner_key = server.key("write", project="owner")
        other_key = server.key("write", project="other")
        barrier = threading.Barrier(2, timeout=30)

        def send(key: str, status: str, extra: dict[str, Any]) -> list[int]:
            answers = []
            with httpx.Client(base_url=server.url, headers=bearer(key), timeout=30) as client:
                for event_id in event_ids:
                    event = wire_event(event_id=str(event_id), status=status, **extra)
                    barrier.wait()
                    answers.append(client.post("/v1/events", json=event).status_code)
            return answers

        with ThreadPoolExecutor(2) as pool:
            owner = pool.submit(send, owner_key, "running", {"cost_usd": None})
            other = pool.submit(send, other_key, "failed", {"error_message": "taken over"})
            owner_answers, other_answers = owner.result(120), other.result(120)
    with engine.connect() as connection:
        stored = {
            uuid.UUID(str(row.event_id)): (row.project_id, row.status, row.error_message)
            for row in connection.execute(
                sa.text("SELECT event_id, project_id, status, error_message FROM agent_usage")
            )
        }
    assert len(stored) == RACED_IDS
    for event_id, mine, theirs in zip(event_ids, owner_answers, other_answers, strict=True):
        assert sorted((mine, theirs)) == [200, 409], event_id
        winner = ("owner", "running", None) if mine == 200 else ("other", "failed", "taken over")
        assert stored[event_id] == winner


def test_racing_progress_converges_on_the_largest_spend(engine: Engine) -> None:
    """Producers sending the spend so far of the same running invocations in different orders:
    whatever the interleaving, each row ends with the largest value sent, per column."""
    starts = [make_event(status="running", task_id=f"race-{i}") for i in range(20)]
    add_events(engine, *starts)
    rng = random.Random(11)
    columns = ("cost_usd", "input_tokens", "output_tokens", "cache_read_tokens")
    sent = [
        [
            make_event(
                **{
                    **start.model_dump(),
                    "cost_usd": rng.choice([None, round(rng.uniform(0, 5), 4)]),
                    "input_tokens": rng.randrange(10_000),
                    "output_tokens": rng.choice([None, rng.randrange(1_000)]),
                    "cache_read_tokens": rng.randrange(10**6),
                }
            )
            for start in starts
            for _ in range(3)
        ]
        for _producer in range(4)
    ]

    def produce(events: list) -> None:
        for i in range(0, len(events), 7):
            add_events(engine, *events[i : i + 7])

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(produce, events) for events in sent]:
            done.result(120)
    everything = list(itertools.chain.from_iterable(sent))
    with Session(engine) as session:
        rows = {row.event_id: row for row in session.exec(sa.select(AgentUsage)).scalars()}
    for start in starts:
        mine = [event for event in everything if event.event_id == start.event_id]
        for column in columns:
            values = [getattr(e, column) for e in mine if getattr(e, column) is not None]
            assert getattr(rows[start.event_id], column) == (max(values) if values else None)
        assert rows[start.event_id].status == "running"
