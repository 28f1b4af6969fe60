"""The tracker: every plugin gets every event, a failing plugin is isolated, emit never blocks."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from claude_api import hookimpl
from claude_api.errors import EventConflict, TrackingError
from claude_api.events import Status, UsageEvent
from claude_api.plugins.manager import ENTRY_POINT_GROUP, get_plugin_manager
from claude_api.tracking import Tracker, build_tracker
from tests.factories import add_events, make_event


class Capture:
    """A real plugin that keeps what it receives."""

    def __init__(self) -> None:
        self.started: list[UsageEvent] = []
        self.finished: list[UsageEvent] = []

    @hookimpl
    def usage_started(self, event: UsageEvent) -> None:
        self.started.append(event)

    @hookimpl
    def usage_finished(self, event: UsageEvent) -> None:
        self.finished.append(event)


class Broken:
    @hookimpl
    def usage_finished(self, event: UsageEvent) -> None:
        raise RuntimeError("plugin bug")


class BatchCapture:
    def __init__(self) -> None:
        self.batches: list[list[UsageEvent]] = []

    @hookimpl
    def usage_batch(self, events: Sequence[UsageEvent]) -> None:
        self.batches.append(list(events))

    @hookimpl
    def usage_finished(self, event: UsageEvent) -> None:
        raise AssertionError("a batch plugin is not called per event")


def count_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM agent_usage")).scalar_one()


def started_and_finished(n: int) -> list[UsageEvent]:
    events = []
    for i in range(n):
        start = make_event(status=Status.RUNNING, task_id=f"t{i}")
        events += [start, start.finish(Status.COMPLETED, cost_usd=0.1)]
    return events


def test_every_plugin_receives_every_event_in_order(engine: Engine, tracker: Tracker) -> None:
    capture, batch = Capture(), BatchCapture()
    tracker.manager.register(capture, name="capture")
    tracker.manager.register(batch, name="batch")
    events = started_and_finished(50)
    for event in events:
        tracker.emit(event)
    assert tracker.flush(timeout=10)
    assert capture.started == events[0::2]
    assert capture.finished == events[1::2]
    assert [e for b in batch.batches for e in b] == events
    assert count_rows(engine) == 50
    assert tracker.stats.stored == 100


def test_a_raising_plugin_is_logged_and_skipped(
    engine: Engine, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    capture = Capture()
    tracker.manager.register(Broken(), name="broken")
    tracker.manager.register(capture, name="capture")
    events = started_and_finished(5)
    with caplog.at_level(logging.ERROR):
        for event in events:
            tracker.emit(event)
        tracker.flush(timeout=10)
    assert capture.finished == events[1::2]
    assert count_rows(engine) == 5
    assert tracker.stats.plugin_failures["broken"] >= 1
    assert "broken" in caplog.text and "plugin bug" in caplog.text


def test_record_raises_when_the_store_fails_and_stores_nothing(engine: Engine) -> None:
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    capture = Capture()
    tracker.manager.register(capture, name="capture")
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE skill_usage"))
    events = [make_event(kind="agent"), make_event(kind="skill")]
    with pytest.raises(TrackingError, match="could not store 2 events"):
        tracker.record(events)
    assert count_rows(engine) == 0
    assert len(capture.finished) == 2  # the other plugins still got them


def test_emit_survives_an_unwritable_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from claude_api.models.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    engine.dispose()
    readonly = make_engine(f"sqlite:///file:{tmp_path / 'a.db'}?mode=ro&uri=true")
    tracker = build_tracker(readonly, load_entrypoints=False, retry_delays=(0.01,))
    with caplog.at_level(logging.WARNING):
        for event in started_and_finished(3):
            tracker.emit(event)  # must not raise
        assert tracker.close(timeout=10)
    assert tracker.stats.dropped == 6
    assert tracker.stats.stored == 0
    assert "not stored and dropped" in caplog.text


def test_a_full_queue_drops_instead_of_blocking(engine: Engine) -> None:
    release = threading.Event()

    class Slow:
        @hookimpl
        def usage_batch(self, events: Sequence[UsageEvent]) -> None:
            release.wait(10)

    manager = get_plugin_manager(load_entrypoints=False)
    manager.register(Slow(), name="slow")
    tracker = Tracker(manager, store="slow", queue_size=10)
    for event in started_and_finished(8):
        tracker.emit(event)
    assert tracker.stats.emitted == 10
    assert tracker.stats.dropped == 6
    release.set()
    assert tracker.close(timeout=10)
    assert tracker.stats.stored == 10


def test_events_emitted_after_close_are_dropped(tracker: Tracker) -> None:
    tracker.emit(make_event())
    assert tracker.close(timeout=10)
    tracker.emit(make_event())
    assert tracker.stats.dropped == 1
    assert tracker.stats.stored == 1


ENTRY_POINT_PLUGIN = """
from claude_api import hookimpl

received = []

@hookimpl
def usage_started(event):
    received.append(("started", event.event_id))

@hookimpl
def usage_finished(event):
    received.append(("finished", event.event_id))
"""


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[str]:
    """A distribution on sys.path that registers a plugin under the entry-point group."""
    module = "claude_api_test_capture_plugin"
    (tmp_path / f"{module}.py").write_text(ENTRY_POINT_PLUGIN)
    dist_info = tmp_path / "claude_api_test_capture_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: claude-api-test-capture-plugin\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ncapture = {module}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield module
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)


def test_entry_point_plugin_receives_every_event(engine: Engine, installed_plugin: str) -> None:
    tracker = build_tracker(engine, load_entrypoints=True, retry_delays=())
    assert tracker.manager.get_plugin("capture") is not None
    events = started_and_finished(20)
    for event in events:
        tracker.emit(event)
    assert tracker.close(timeout=10)
    received = sys.modules[installed_plugin].received
    expected = [
        ("started" if e.status is Status.RUNNING else "finished", e.event_id) for e in events
    ]
    assert received == expected
    assert count_rows(engine) == 20


def test_emit_survives_a_database_server_that_is_down(caplog: pytest.LogCaptureFixture) -> None:
    from claude_api.models.db import make_engine

    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    tracker = build_tracker(down, load_entrypoints=False, retry_delays=())
    with caplog.at_level(logging.ERROR):
        tracker.emit(make_event())
        assert tracker.close(timeout=20)
    assert tracker.stats.dropped == 1
    assert "not stored and dropped" in caplog.text


# ---- events the store refuses: their ids belong to other invocations -----------------------


def test_record_raises_a_conflict_and_stores_nothing(engine: Engine) -> None:
    victim = make_event(status=Status.RUNNING, project_id="victim")
    add_events(engine, victim)
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=(30.0,))
    hostile = victim.finish(Status.FAILED, project_id="other", error_message="taken over")
    with pytest.raises(EventConflict) as raised:
        tracker.record([make_event(task_id="fine"), hostile])  # never retried: no 30 s wait
    assert raised.value.event_ids == {victim.event_id}
    assert count_rows(engine) == 1
    assert (tracker.stats.refused, tracker.stats.stored, tracker.stats.dropped) == (2, 0, 0)
    tracker.close()


def test_a_queued_batch_is_stored_without_the_events_the_store_refuses(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    victim = make_event(status=Status.RUNNING, project_id="victim", cost_usd=0.1)
    add_events(engine, victim)
    gate = threading.Event()

    class Gate:
        """Holds the first batch, so that every later event waits in one queued batch."""

        @hookimpl
        def usage_batch(self, events: Sequence[UsageEvent]) -> None:
            gate.wait(10)

    # A retry would wait 30 s: a refusal must never be tried again.
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=(30.0,))
    tracker.manager.register(Gate(), name="gate")
    others = started_and_finished(3)
    hostile = victim.finish(Status.FAILED, project_id="other", cost_usd=50.0)
    with caplog.at_level(logging.WARNING):
        tracker.emit(make_event(task_id="first"))
        for event in [*others[:3], hostile, *others[3:]]:
            tracker.emit(event)
        gate.set()
        assert tracker.flush(timeout=10)
    assert (tracker.stats.stored, tracker.stats.refused, tracker.stats.dropped) == (7, 1, 0)
    assert count_rows(engine) == 1 + 1 + 3  # the victim, the first event and the three others
    with engine.connect() as connection:
        status, cost, project = connection.execute(
            sa.text("SELECT status, cost_usd, project_id FROM agent_usage WHERE event_id = :e"),
            {"e": victim.event_id if engine.dialect.name == "postgresql" else victim.event_id.hex},
        ).one()
    assert (status, cost, project) == ("running", 0.1, "victim")
    assert f"refused 1 usage events (tasks: {victim.task_id})" in caplog.text
    assert str(victim.event_id) in caplog.text and "project_id" in caplog.text
    tracker.close()
