"""The write path: idempotent on event id, starts and finishes merged, batches atomic."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from claude_api.models.events import CostSource, Kind, Status
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
