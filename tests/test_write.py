"""The write path: idempotent on event id, starts and finishes merged, batches atomic."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from claude_api.errors import EventConflict
from claude_api.events import CostSource, Kind, Status, UsageEvent
from claude_api.models import data_version
from claude_api.models.tables import AgentUsage, SkillUsage
from tests.factories import BASE_TIME, add_events, make_event


def rows(engine: Engine, table: type[AgentUsage] | type[SkillUsage] = AgentUsage) -> list:
    with Session(engine) as session:
        return list(session.exec(select(table).order_by(table.id)))


def test_finish_completes_its_start(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING, project_id="proj")
    finish = start.finish(
        Status.COMPLETED, duration_seconds=3.0, cost_usd=0.5, input_tokens=10, output_tokens=4
    )
    add_events(engine, start)
    [running] = rows(engine)
    assert running.status == "running"
    assert running.cost_usd is None and running.finished_at is None

    add_events(engine, finish)
    [row] = rows(engine)
    assert row.id == running.id
    assert (row.status, row.cost_usd, row.input_tokens, row.output_tokens) == (
        "completed", 0.5, 10, 4,
    )  # fmt: skip
    assert row.cost_source == CostSource.REPORTED
    assert row.timestamp == BASE_TIME
    assert row.finished_at == BASE_TIME + timedelta(seconds=3)
    assert row.project_id == "proj"


def test_repeated_start_is_one_row(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING)
    add_events(engine, start)
    add_events(engine, start, start)
    assert len(rows(engine)) == 1


def test_finish_without_start_inserts_the_whole_row(engine: Engine) -> None:
    finish = make_event(status=Status.FAILED, error_message="boom", parent_id=uuid.uuid4())
    add_events(engine, finish)
    [row] = rows(engine)
    assert row.status == "failed"
    assert row.error_message == "boom"
    assert row.parent_id == finish.parent_id
    assert row.event_id == finish.event_id
    assert row.agent_name == finish.name


def test_a_finish_never_counts_twice(engine: Engine) -> None:
    first = make_event(status=Status.COMPLETED, cost_usd=1.0)
    second = first.finish(Status.FAILED, cost_usd=7.0, error_message="late retry")
    add_events(engine, first)
    add_events(engine, second)
    late_start = make_event(event_id=first.event_id, status=Status.RUNNING)
    add_events(engine, late_start)  # a late start changes nothing either
    [row] = rows(engine)
    assert (row.status, row.cost_usd, row.error_message) == ("completed", 1.0, None)


def test_start_and_finish_in_one_batch(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING)
    finish = start.finish(Status.COMPLETED, cost_usd=2.0)
    add_events(engine, start, finish, start)
    [row] = rows(engine)
    assert (row.status, row.cost_usd) == ("completed", 2.0)


def test_kinds_go_to_their_tables(engine: Engine) -> None:
    agent = make_event(kind=Kind.AGENT, name="planner")
    skill = make_event(kind=Kind.SKILL, name="lint-fix", parent_id=agent.event_id)
    add_events(engine, agent, skill)
    assert [r.agent_name for r in rows(engine, AgentUsage)] == ["planner"]
    [skill_row] = rows(engine, SkillUsage)
    assert (skill_row.skill_name, skill_row.parent_id) == ("lint-fix", agent.event_id)


def test_timestamps_come_back_as_utc(engine: Engine) -> None:
    from zoneinfo import ZoneInfo

    local = BASE_TIME.astimezone(ZoneInfo("Asia/Tokyo"))
    add_events(engine, make_event(timestamp=local))
    [row] = rows(engine)
    assert row.timestamp == BASE_TIME
    assert row.timestamp.utcoffset() == timedelta(0)


def test_a_failed_batch_leaves_nothing(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE skill_usage"))
    agent = make_event(kind=Kind.AGENT)
    skill = make_event(kind=Kind.SKILL)
    with pytest.raises(sa.exc.SQLAlchemyError):
        add_events(engine, agent, skill)
    assert rows(engine) == []


def test_large_batch(engine: Engine) -> None:
    events = [make_event(task_id=f"t{i}", cost_usd=i / 100) for i in range(2_500)]
    add_events(engine, *events)
    with Session(engine) as session:
        count, total = session.exec(select(sa.func.count(), sa.func.sum(AgentUsage.cost_usd))).one()
    assert count == 2_500
    assert total == pytest.approx(sum(e.cost_usd for e in events))


# ---- running invocations carry their spend so far ------------------------------------------

SPEND = (
    "cost_usd", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
    "duration_seconds",
)  # fmt: skip


def progress(start: UsageEvent, **spend: object) -> UsageEvent:
    """A running event of `start`'s invocation carrying what it has spent so far."""
    return make_event(**{**start.model_dump(), **spend})


def spend_of(row: AgentUsage) -> dict[str, object]:
    return {name: getattr(row, name) for name in SPEND}


def largest(*events: UsageEvent) -> dict[str, object]:
    """Per column, the largest value any of `events` carries (None when none does)."""
    spent = {}
    for name in SPEND:
        values = [getattr(event, name) for event in events if getattr(event, name) is not None]
        spent[name] = max(values) if values else None
    return spent


def test_running_events_raise_the_spend_so_far_and_never_lower_it(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING, model=None)
    later = progress(
        start, cost_usd=0.40, input_tokens=300, output_tokens=90, cache_read_tokens=9_000,
        cache_creation_tokens=700, duration_seconds=40.0, model="claude-opus-4-1",
    )  # fmt: skip
    # Sent earlier, arriving last: lower everywhere but in cache reads, and no cost known yet.
    earlier = progress(
        start, input_tokens=120, output_tokens=30, cache_read_tokens=12_000,
        cache_creation_tokens=None, duration_seconds=15.0, model="claude-sonnet-4-5",
    )  # fmt: skip
    add_events(engine, start)
    add_events(engine, later)
    [row] = rows(engine)
    assert row.status == "running" and row.finished_at is None
    assert spend_of(row) == largest(start, later)
    assert (row.model, row.cost_source) == ("claude-opus-4-1", CostSource.REPORTED)

    add_events(engine, earlier)
    [row] = rows(engine)
    assert row.status == "running" and row.finished_at is None
    assert spend_of(row) == largest(start, later, earlier)
    assert row.input_tokens == later.input_tokens  # not lowered by the late event
    assert row.cache_read_tokens == earlier.cache_read_tokens  # raised where it is larger
    assert row.cost_usd == later.cost_usd and row.cost_source == CostSource.REPORTED
    assert row.timestamp == start.timestamp and row.source == start.source


def test_a_finish_ends_the_running_row_with_its_own_values(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING)
    running = progress(start, cost_usd=0.5, input_tokens=400, cache_read_tokens=5_000)
    finish = start.finish(Status.COMPLETED, cost_usd=0.45, input_tokens=380, output_tokens=60)
    add_events(engine, start, running)
    add_events(engine, finish)
    [row] = rows(engine)
    assert row.status == "completed" and row.finished_at == finish.finished_at
    # The finish's values win; what it leaves empty keeps the spend the row had.
    assert (row.cost_usd, row.input_tokens, row.output_tokens) == (0.45, 380, 60)
    assert row.cache_read_tokens == running.cache_read_tokens

    late = progress(start, cost_usd=9.0, input_tokens=9_000, output_tokens=900)
    add_events(engine, late)  # a running event after the finish changes nothing
    [after] = rows(engine)
    assert spend_of(after) == spend_of(row) and after.status == "completed"


def test_progress_in_one_batch_merges_as_one_at_a_time(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING)
    high = progress(start, cost_usd=0.3, input_tokens=500, output_tokens=50)
    low = progress(start, cost_usd=0.1, input_tokens=100, output_tokens=80)
    add_events(engine, start, high, low)
    [row] = rows(engine)
    assert row.status == "running"
    assert spend_of(row) == largest(start, high, low)

    other = make_event(status=Status.RUNNING, task_id="task-2")
    finish = other.finish(Status.FAILED, error_message="boom", output_tokens=7)
    add_events(engine, other, progress(other, input_tokens=70, cost_usd=0.2), finish)
    done = next(r for r in rows(engine) if r.event_id == other.event_id)
    assert (done.status, done.error_message, done.output_tokens) == ("failed", "boom", 7)
    assert (done.input_tokens, done.cost_usd) == (70, 0.2)  # kept from the progress


def test_progress_leaves_the_rollups_and_counts_once(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING)
    add_events(engine, start, progress(start, cost_usd=0.2, input_tokens=100))
    add_events(engine, progress(start, cost_usd=0.3, input_tokens=150))
    assert rollup_invocations(engine) == 0  # the rollups hold finished invocations only
    add_events(engine, start.finish(Status.COMPLETED, cost_usd=0.35))
    add_events(engine, progress(start, cost_usd=0.9))
    assert rollup_invocations(engine) == 1


def rollup_invocations(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT coalesce(sum(invocations), 0) FROM usage_rollup WHERE grain = 'hour'")
        ).scalar_one()


def test_every_progress_event_changes_the_data_version(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING)
    add_events(engine, start)
    seen = {data_version_of(engine)}
    for tokens in (10, 20, 30):
        add_events(engine, progress(start, input_tokens=tokens))
        seen.add(data_version_of(engine))
    assert len(seen) == 4


def data_version_of(engine: Engine) -> int | None:
    with Session(engine) as session:
        return data_version.current(session)


# ---- an event merges only into a row of its own invocation ---------------------------------


def snapshot(engine: Engine) -> list[tuple]:
    """Every column of every usage row, in a stable order."""
    with engine.connect() as connection:
        return [
            tuple(row)
            for table in ("agent_usage", "skill_usage")
            for row in connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
        ]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"project_id": "attacker"}, ("project_id",)),
        ({"project_id": None}, ("project_id",)),
        ({"name": "other-agent"}, ("name",)),
        ({"task_id": "other-task"}, ("task_id",)),
        ({"kind": Kind.SKILL}, ("kind",)),
        ({"task_id": "t", "project_id": "p"}, ("task_id", "project_id")),
    ],
)
def test_an_event_of_another_invocation_refuses_its_batch(
    engine: Engine, changes: dict, fields: tuple[str, ...]
) -> None:
    victim = make_event(status=Status.RUNNING, project_id="victim", cost_usd=0.1)
    add_events(engine, victim)
    before = snapshot(engine)
    innocent = make_event(project_id="attacker", task_id="fine")
    hostile = make_event(
        **{
            **victim.model_dump(),
            "status": Status.FAILED,
            "cost_usd": 99.0,
            "error_message": "taken over",
            **changes,
        }
    )
    with pytest.raises(EventConflict) as raised:
        add_events(engine, innocent, hostile)
    assert snapshot(engine) == before  # the victim unchanged, nothing of the batch written
    [conflict] = raised.value.conflicts
    assert (conflict.event_id, conflict.fields, conflict.positions) == (
        victim.event_id, fields, (1,),
    )  # fmt: skip
    [problem] = raised.value.problems
    assert problem["field"] == "events[1].event_id"
    assert "victim" not in problem["message"] and "victim" not in str(raised.value)


def test_a_stored_project_refuses_an_event_without_one_and_the_reverse(engine: Engine) -> None:
    with_project = make_event(status=Status.RUNNING, project_id="web")
    without = make_event(status=Status.RUNNING, project_id=None)
    add_events(engine, with_project, without)
    before = snapshot(engine)
    for stored, project in ((with_project, None), (without, "web")):
        finish = stored.finish(Status.COMPLETED, project_id=project)
        with pytest.raises(EventConflict):
            add_events(engine, finish)
        progress_event = progress(stored, project_id=project, input_tokens=5)
        with pytest.raises(EventConflict):
            add_events(engine, progress_event)
    assert snapshot(engine) == before


def test_a_skill_row_refuses_an_agent_event_of_its_id_and_the_reverse(engine: Engine) -> None:
    skill = make_event(kind=Kind.SKILL, name="lint-fix", status=Status.RUNNING)
    agent = make_event(kind=Kind.AGENT, status=Status.COMPLETED)
    add_events(engine, skill, agent)
    before = snapshot(engine)
    for stored, kind in ((skill, Kind.AGENT), (agent, Kind.SKILL)):
        event = make_event(event_id=stored.event_id, kind=kind, name=stored.name)
        with pytest.raises(EventConflict) as raised:
            add_events(engine, event)
        assert raised.value.conflicts[0].fields == ("kind",)
    assert snapshot(engine) == before
    assert len(rows(engine, AgentUsage)) == len(rows(engine, SkillUsage)) == 1


def test_events_of_one_id_that_disagree_within_a_batch_refuse_it(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING, project_id="a")
    finish = start.finish(Status.COMPLETED, project_id="b")
    skill = make_event(event_id=start.event_id, kind=Kind.SKILL, project_id="a")
    for batch in ((start, finish), (start, skill), (finish, start)):
        with pytest.raises(EventConflict) as raised:
            add_events(engine, make_event(), *batch)
        [conflict] = raised.value.conflicts
        assert conflict.within_batch and conflict.positions == (1, 2)
    assert snapshot(engine) == []


def test_an_exact_replay_of_a_finished_invocation_is_harmless(engine: Engine) -> None:
    start = make_event(status=Status.RUNNING, project_id="web")
    finish = start.finish(Status.COMPLETED, cost_usd=0.5, input_tokens=40)
    add_events(engine, start, finish)
    before = snapshot(engine)
    add_events(engine, start, finish)
    add_events(engine, finish, progress(start, input_tokens=90))
    assert snapshot(engine) == before
    assert rollup_invocations(engine) == 1
