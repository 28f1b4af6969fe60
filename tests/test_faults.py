"""Faults: the server killed with SIGKILL in the middle of ingest and restarted, and a full or
read-only database under the executor and under ingest. Every acknowledged event is stored once;
every other one is retried, or counted and logged as dropped with its task, never silently lost."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlmodel import Session

from claude_api.config import Settings
from claude_api.events import Status, UsageEvent
from claude_api.executor import TaskResult, run_task
from claude_api.models.db import make_engine, upgrade, write_engine
from claude_api.models.tables import AgentUsage, SkillUsage
from claude_api.models.write import store_events
from claude_api.plugins.hookspecs import hookimpl
from claude_api.server.app import create_app
from claude_api.tracking import Tracker, build_tracker
from tests.fake_claude import FakeClaude
from tests.fake_claude import scenarios as sc
from tests.live_server import serve
from tests.planned_events import START, Invocation, invocations
from tests.server_process import ServerProcess

TABLES = (AgentUsage.__table__, SkillUsage.__table__)
DROPPED_LINE = re.compile(r"^(\d+) usage events not stored and dropped \(tasks: (.*?)\): (.*)$")
RETRY_LINE = re.compile(r"^storing \d+ events failed \(.*\); retrying in ")
SUCCESS_EVENTS = 8  # the task, two subagents and a skill: a start and a finish each
SQLITE_MAX_PAGES = 1_073_741_823  # SQLite's default max_page_count


def rows_by_id(engine: Engine) -> dict[uuid.UUID, dict[str, Any]]:
    found: dict[uuid.UUID, dict[str, Any]] = {}
    with engine.connect() as connection:
        for table in TABLES:
            for row in connection.execute(sa.select(table)):
                assert row.event_id not in found, f"{row.event_id} stored twice"
                found[row.event_id] = dict(row._mapping)
    return found


# ---- SIGKILL in the middle of ingest -----------------------------------------------------------

BATCHES = 24
PER_BATCH = 100  # new invocations a batch brings (plus the finishes of the previous batch's)
BIG_BATCH = 1_500  # the batch the first kill cuts: long enough to be caught while it is stored
# Each SIGKILL: after how many acknowledged batches, and whether only once the next batch is
# committed (its answer may then be lost: the client sends again what is already stored).
KILLS = ((6, False), (16, True))
MAX_ATTEMPTS = 20


def kill_plan() -> tuple[list[Invocation], list[list[dict[str, Any]]], list[int]]:
    """Batches, each starting its new invocations (a tenth of them sent as a finish only) and
    finishing the previous batch's; a last batch finishes the last ones. Also the number of
    new invocations per batch: they come first in it."""
    sizes = [BIG_BATCH if n == KILLS[0][0] else PER_BATCH for n in range(BATCHES)] + [0]
    planned = invocations(sum(sizes), source="kill-test", seed=3)
    batches: list[list[dict[str, Any]]] = []
    first = 0
    previous: list[Invocation] = []
    for size in sizes:
        mine = planned[first : first + size]
        batch = [i.finish if n % 10 == 0 else i.start for n, i in enumerate(mine)]
        batch += [i.finish for n, i in enumerate(previous) if n % 10 != 0]
        batches.append(batch)
        first += size
        previous = mine
    return planned, batches, sizes


@dataclass
class RetryingClient:
    """Posts batches in order; a batch without a 200 is posted again, same event ids, once the
    server is up (`up`). `changed` is notified whenever `sending` or `acked` changes."""

    url: str
    batches: list[list[dict[str, Any]]]
    up: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    sending: int = -1
    acked: list[int] = field(default_factory=list)
    failed_attempts: Counter[int] = field(default_factory=Counter)
    stalled: threading.Event = field(default_factory=threading.Event)
    unexpected: list[str] = field(default_factory=list)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            for index, batch in enumerate(self.batches):
                if not self._deliver(http, index, batch):
                    self.unexpected.append(f"batch {index}: gave up")
                    return

    def _deliver(self, http: httpx.Client, index: int, batch: list[dict[str, Any]]) -> bool:
        for _attempt in range(MAX_ATTEMPTS):
            if not self.up.is_set():
                self.stalled.set()
                if not self.up.wait(60):
                    return False
            with self.changed:
                self.sending = index
                self.changed.notify_all()
            try:
                response = http.post("/v1/events", json={"events": batch})
            except httpx.TransportError:
                self.failed_attempts[index] += 1
                continue
            if response.status_code == 200:
                with self.changed:
                    self.acked.append(index)
                    self.changed.notify_all()
                return True
            self.unexpected.append(f"batch {index}: {response.status_code} {response.text[:300]}")
            self.failed_attempts[index] += 1
        return False

    def wait_mid_request(self, acknowledged: int, timeout: float = 60) -> None:
        """Until `acknowledged` batches are acknowledged and the next one is on its way."""
        with self.changed:
            done = self.changed.wait_for(
                lambda: len(self.acked) >= acknowledged and self.sending == self.acked[-1] + 1,
                timeout,
            )
        assert done, f"only {len(self.acked)} batches acknowledged in {timeout} s"


def wait_until_stored(engine: Engine, event_id: uuid.UUID, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            for table in TABLES:
                found = connection.execute(
                    sa.select(table.c.id).where(table.c.event_id == event_id)
                )
                if found.first() is not None:
                    return
            connection.rollback()  # a fresh snapshot for the next look
    raise AssertionError(f"{event_id} was not stored within {timeout} s")


def test_server_killed_mid_ingest_loses_nothing_acknowledged(
    database_url: str, tmp_path: Path
) -> None:
    planned, batches, sizes = kill_plan()
    fresh = [[uuid.UUID(e["event_id"]) for e in b[:n]] for b, n in zip(batches, sizes, strict=True)]
    engine = make_engine(database_url)
    upgrade(engine)
    server = ServerProcess(database_url, tmp_path / "server.log")
    client = RetryingClient(server.url, batches)
    sender = threading.Thread(target=client.run, name="ingest-client")
    cut: list[tuple[int, int]] = []  # (batch in flight at a kill, how many of its new events)
    try:
        server.start()
        client.up.set()
        sender.start()
        for acknowledged, after_commit in KILLS:
            client.wait_mid_request(acknowledged)
            if after_commit:
                wait_until_stored(engine, fresh[client.sending][0])
            client.stalled.clear()
            client.up.clear()
            server.kill()
            assert client.stalled.wait(30), "the client did not notice the server was gone"
            batch = client.sending
            server.start()
            stored = rows_by_id(engine)
            cut.append((batch, sum(event_id in stored for event_id in fresh[batch])))
            client.up.set()
        sender.join(120)
        assert not sender.is_alive(), "the client did not finish"
    finally:
        client.up.set()
        server.stop()
        sender.join(30)

    assert client.unexpected == []
    assert client.acked == list(range(len(batches)))
    assert server.starts == 1 + len(KILLS)
    # A kill cut a request (the big batch, at least): the client saw it fail and sent it again.
    assert sum(client.failed_attempts.values()) >= 1
    # A batch cut by the kill was stored whole or not at all.
    for batch, stored in cut:
        assert stored in (0, len(fresh[batch])), (batch, stored)
    found = rows_by_id(engine)
    engine.dispose()
    expected = {invocation.event_id: invocation.expected() for invocation in planned}
    kinds = {invocation.event_id: invocation.finish["kind"] for invocation in planned}
    assert {
        event_id: (
            kinds[event_id],
            row["status"],
            row["cost_usd"],
            row["input_tokens"],
            row["output_tokens"],
        )
        for event_id, row in found.items()
    } == expected


# ---- a full or read-only database ----------------------------------------------------------------


class Outage:
    """Makes the database refuse writes on every connection `engine` hands out while active:
    SQLite as a full disk (max_page_count held at the file's size, after the free room left in
    its pages is used up: SQLITE_FULL, "database or disk is full"), PostgreSQL as read-only
    (default_transaction_read_only)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.active = False
        self.sqlite = engine.dialect.name == "sqlite"
        event.listen(engine, "checkout", self._apply)

    def _apply(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        if self.sqlite:
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0] if self.active else SQLITE_MAX_PAGES
            cursor.execute(f"PRAGMA max_page_count = {pages}")
        else:
            cursor.execute(f"SET default_transaction_read_only = {'on' if self.active else 'off'}")
            dbapi_connection.commit()
        cursor.close()

    def start(self) -> None:
        self.active = True
        if self.sqlite:
            self._fill()

    def end(self) -> None:
        self.active = False

    def _fill(self, streak: int = 20, limit: int = 5_000) -> None:
        """Write the smallest rows until `streak` in a row fail: then no page has room for
        another row, and every write that adds one fails."""
        failures = 0
        for _ in range(limit):
            filler = UsageEvent(
                event_id=uuid.uuid4(),
                kind="agent",
                name="f",
                task_id="f",
                timestamp=START,
                status=Status.RUNNING,
                source="f",
            )
            try:
                with Session(write_engine(self.engine)) as session:
                    store_events(session, [filler])
                    session.commit()
            except sa.exc.OperationalError as error:
                assert "database or disk is full" in str(error)
                failures += 1
                if failures == streak:
                    return
            else:
                failures = 0
        raise AssertionError("the database never filled up")


class Capture:
    """A plugin that keeps every event the tracker delivers, whatever the store does."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    @hookimpl
    def usage_batch(self, events: list[UsageEvent]) -> None:
        self.events.extend(events)


class TrackingLog(logging.Handler):
    """The tracker's log lines; `on_retry` runs in the tracker's thread at its first retry."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.on_retry: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if self.on_retry is not None and RETRY_LINE.match(message):
            self.on_retry()
            self.on_retry = None

    def dropped(self) -> list[tuple[int, str, str]]:
        """(events, tasks, reason) of every line that reported events dropped."""
        found = []
        for message in self.messages:
            if match := DROPPED_LINE.match(message):
                found.append((int(match[1]), match[2], match[3]))
        return found

    def retries(self) -> int:
        return sum(1 for message in self.messages if RETRY_LINE.match(message))


@pytest.fixture
def tracking_log() -> Iterator[TrackingLog]:
    handler = TrackingLog()
    logger = logging.getLogger("claude_api.tracking")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def fake(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


def tracker_with_capture(engine: Engine) -> tuple[Tracker, Capture]:
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=(0.01, 0.01))
    capture = Capture()
    tracker.manager.register(capture, name="capture")
    return tracker, capture


def run(fake: FakeClaude, script: sc.Script, tracker: Tracker | None, **options: Any) -> TaskResult:
    settings = Settings(claude_bin=str(fake.install(script)))
    return run_task("Fix lint", tracker=tracker, settings=settings, **options)


def comparable(result: TaskResult) -> TaskResult:
    """The result without what differs between two runs: each run is its own session."""
    return dataclasses.replace(
        result, duration_seconds=0.0, event_id=uuid.UUID(int=0), task_id="", session_id=""
    )


def assert_accounted(
    tracker: Tracker, capture: Capture, log: TrackingLog, engine: Engine, task_id: str
) -> None:
    """Every emitted event is stored (its row is there, at least as far along) or counted and
    logged as dropped, naming its task; the counts agree with each other and with the log."""
    stats = tracker.stats
    assert stats.emitted == len(capture.events) == stats.stored + stats.dropped
    dropped_lines = log.dropped()
    assert sum(count for count, _tasks, _reason in dropped_lines) == stats.dropped
    for _count, tasks, reason in dropped_lines:
        assert tasks == task_id
        assert "[SQL:" not in reason and len(reason) <= 300  # one line, no statement dump
    rows = rows_by_id(engine)
    missing = [
        e
        for e in capture.events
        if e.event_id not in rows or (e.is_finish and rows[e.event_id]["status"] == "running")
    ]
    assert len(missing) <= stats.dropped
    assert not missing or dropped_lines, "events missing from the database were never reported"


def test_read_only_database_task_completes_and_every_event_is_reported(
    database_url: str, fake: FakeClaude, tracking_log: TrackingLog, tmp_path: Path
) -> None:
    """SQLite opened read-only (mode=ro), PostgreSQL with read-only transactions."""
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    if database_url.startswith("sqlite"):
        read_only_url = f"sqlite:///file:{tmp_path / 'analytics.db'}?mode=ro&uri=true"
    else:
        read_only_url = f"{database_url}%20-cdefault_transaction_read_only%3Don"
    read_only = make_engine(read_only_url)
    healthy = run(fake, sc.success(), None)
    t_ro = str(uuid.uuid4())
    tracker, capture = tracker_with_capture(read_only)
    try:
        result = run(fake, sc.success(), tracker, task_id=t_ro)
        assert tracker.close(30)
        assert comparable(result) == comparable(healthy)
        assert tracker.stats.emitted == SUCCESS_EVENTS
        assert (tracker.stats.stored, tracker.stats.dropped) == (0, SUCCESS_EVENTS)
        # Each batch was tried again before it was dropped.
        assert tracking_log.retries() == 2 * len(tracking_log.dropped())
        assert_accounted(tracker, capture, tracking_log, read_only, t_ro)
        assert rows_by_id(read_only) == {}
    finally:
        read_only.dispose()


def test_disk_full_mid_run_task_completes_and_every_event_is_accounted(
    engine: Engine, fake: FakeClaude, tracking_log: TrackingLog, tmp_path: Path
) -> None:
    """The disk fills once the task's start is stored: later events are retried, then dropped
    and reported; what was stored before stays."""
    outage = Outage(engine)
    healthy = run(fake, sc.success(), None)
    t_full = str(uuid.uuid4())
    resume = tmp_path / "resume"
    script = dataclasses.replace(sc.success(), pause_after_line=3, resume_file=str(resume))
    tracker, capture = tracker_with_capture(engine)

    def fill_the_disk() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            row["task_id"] == t_full for row in rows_by_id(engine).values()
        ):
            time.sleep(0.02)  # polling for the task's start row: the run is under way
        outage.start()
        resume.touch()

    saboteur = threading.Thread(target=fill_the_disk)
    saboteur.start()
    try:
        result = run(fake, script, tracker, task_id=t_full)
    finally:
        saboteur.join(30)
        resume.touch()
    assert tracker.close(30)
    outage.end()

    assert comparable(result) == comparable(healthy)
    assert tracker.stats.emitted == SUCCESS_EVENTS
    assert tracker.stats.stored >= 1 and tracker.stats.dropped >= 1
    assert tracking_log.retries() >= 2
    assert_accounted(tracker, capture, tracking_log, engine, t_full)
    task_row = rows_by_id(engine)[result.event_id]
    assert task_row["task_id"] == t_full


def test_short_outage_is_retried_and_nothing_is_lost(
    engine: Engine, fake: FakeClaude, tracking_log: TrackingLog
) -> None:
    """The database refuses writes when the task starts and recovers at the tracker's first
    retry: every event is stored, none dropped."""
    outage = Outage(engine)
    healthy = run(fake, sc.success(), None)
    t_short = str(uuid.uuid4())
    tracker, capture = tracker_with_capture(engine)
    outage.start()
    tracking_log.on_retry = outage.end
    try:
        result = run(fake, sc.success(), tracker, task_id=t_short)
        assert tracker.flush(30)
    finally:
        tracker.close(30)
        outage.end()

    assert comparable(result) == comparable(healthy)
    assert tracking_log.retries() >= 1
    assert (tracker.stats.stored, tracker.stats.dropped) == (SUCCESS_EVENTS, 0)
    assert tracking_log.dropped() == []
    rows = [row for row in rows_by_id(engine).values() if row["task_id"] == t_short]
    assert len(rows) == 4 and {row["status"] for row in rows} == {"completed"}
    assert_accounted(tracker, capture, tracking_log, engine, t_short)


def test_ingest_on_a_full_database_refuses_then_stores_the_retry_once(
    database_url: str, tracking_log: TrackingLog
) -> None:
    """POST /v1/events while the database refuses writes: 503 with a one-line reason, nothing
    stored; the client's retry after recovery is stored once."""
    batch = [i.finish for i in invocations(50, source="ingest-fault", seed=4)]
    settings = Settings(database_url=database_url, auth="off")
    app = create_app(settings)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        engine = app.state.services.engine
        outage = Outage(engine)
        outage.start()
        before = rows_by_id(engine)
        refused = http.post("/v1/events", json={"events": batch})
        assert refused.status_code == 503
        assert "Traceback" not in refused.text and "[SQL:" not in refused.text
        assert "could not store" in refused.json()["message"]
        assert rows_by_id(engine) == before
        outage.end()
        accepted = http.post("/v1/events", json={"events": batch})
        assert accepted.status_code == 200
        again = http.post("/v1/events", json={"events": batch})
        assert again.status_code == 200
        stored = rows_by_id(engine)
    assert len(stored) == len(before) + len(batch)
    assert {uuid.UUID(e["event_id"]) for e in batch} <= set(stored)
