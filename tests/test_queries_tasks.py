"""list_task_usage and list_tasks: which agents and skills a task ran, which tasks ran one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import InvalidFilter, NotFound
from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.filters import UsageFilter
from claude_api.models.queries import list_task_usage, list_tasks, stats_by_name
from claude_api.models.results import TaskSummary
from tests import expected
from tests.factories import BASE_TIME, add_events, make_event


def a_task(task_id: str = "task-1", start: timedelta = timedelta()) -> list[UsageEvent]:
    """A task's main loop, a subagent it spawned, and the skills they used."""
    at = BASE_TIME + start
    main = make_event(name="orchestrator", task_id=task_id, timestamp=at, project_id="p")
    sub = make_event(
        name="reviewer",
        task_id=task_id,
        parent_id=main.event_id,
        timestamp=at + timedelta(seconds=5),
        cost_usd=0.75,
    )
    skill = make_event(
        kind="skill",
        name="pdf",
        task_id=task_id,
        parent_id=sub.event_id,
        timestamp=at + timedelta(seconds=6),
        status=Status.FAILED,
        error_message="bad file",
    )
    running = make_event(
        kind="skill",
        name="xlsx",
        task_id=task_id,
        parent_id=main.event_id,
        timestamp=at + timedelta(seconds=5),
        status=Status.RUNNING,
    )
    return [main, sub, skill, running]


def test_list_task_usage_returns_every_invocation_in_order(engine: Engine) -> None:
    events = a_task()
    add_events(engine, *reversed(events), *a_task("task-2"))
    with Session(engine) as session:
        usage = list_task_usage(session, task_id="task-1")
    ordered = sorted(events, key=lambda e: (e.timestamp, e.kind.value, str(e.event_id)))
    assert [u.event_id for u in usage] == [e.event_id for e in ordered]
    for row, event in zip(usage, ordered, strict=True):
        assert (row.kind, row.name, row.parent_id, row.status, row.timestamp) == (
            event.kind,
            event.name,
            event.parent_id,
            event.status,
            event.timestamp,
        )
        assert (row.cost_usd, row.duration_seconds, row.finished_at, row.error_message) == (
            event.cost_usd,
            event.duration_seconds,
            event.finished_at,
            event.error_message,
        )
        assert (row.input_tokens, row.output_tokens, row.model, row.project_id) == (
            event.input_tokens,
            event.output_tokens,
            event.model,
            event.project_id,
        )
    # The parent links rebuild the tree: main loop -> subagent -> skill.
    by_id = {row.event_id: row for row in usage}
    pdf = next(row for row in usage if row.name == "pdf")
    assert by_id[by_id[pdf.parent_id].parent_id].name == "orchestrator"


def test_unknown_task_is_not_found(engine: Engine) -> None:
    add_events(engine, *a_task())
    with Session(engine) as session, pytest.raises(NotFound):
        list_task_usage(session, task_id="task-404")


def test_empty_task_id_is_invalid(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidFilter) as error:
        list_task_usage(session, task_id="")
    assert error.value.field == "task_id"


def walk(engine: Engine, filter: UsageFilter, limit: int) -> list[TaskSummary]:
    items: list[TaskSummary] = []
    after = None
    with Session(engine) as session:
        while True:
            page = list_tasks(session, filter=filter, limit=limit, after=after)
            assert len(page.items) <= limit
            items.extend(page.items)
            if not page.has_next:
                return items
            after = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_list_tasks_walks_the_tasks_that_used_an_agent(engine: Engine, limit: int) -> None:
    events = []
    for i in range(7):
        # Tasks 0-1 and 2-3 end at the same instant: the task id breaks the tie.
        events += a_task(f"task-{i}", start=timedelta(hours=i // 2 * 2))
    events.append(make_event(name="reviewer", task_id="task-3", timestamp=BASE_TIME))
    events += [make_event(name="planner", task_id="task-9")]
    add_events(engine, *events)

    tasks = walk(engine, UsageFilter(name="reviewer"), limit)

    # The agent chooses the tasks; each summary covers the whole task, every agent and skill.
    task_ids = {e.task_id for e in events if e.name == "reviewer"}
    whole = {t: [e for e in events if e.task_id == t] for t in task_ids}
    last_seen = {t: max(e.timestamp for e in whole[t]) for t in task_ids}
    order = sorted(task_ids, key=lambda t: (-last_seen[t].timestamp(), t))
    assert [t.task_id for t in tasks] == order
    for task in tasks:
        mine = whole[task.task_id]
        totals = expected.totals(mine)
        assert (task.invocations, task.completed, task.failed, task.running) == (
            totals["invocations"],
            totals["completed"],
            totals["failed"],
            totals["running"],
        )
        assert task.total_cost_usd == pytest.approx(totals["total_cost_usd"])
        assert task.first_seen_at == min(e.timestamp for e in mine)
        assert task.last_seen_at == last_seen[task.task_id]
        assert task.agents == tuple(sorted({e.name for e in mine if e.kind is Kind.AGENT}))
        assert task.skills == tuple(sorted({e.name for e in mine if e.kind is Kind.SKILL}))
        # One skill still runs, so the task does, and has no end yet.
        assert (task.status, task.ended_at, task.duration_seconds) == (Status.RUNNING, None, None)


def test_task_summary_status_and_duration(engine: Engine) -> None:
    main = make_event(name="orchestrator", task_id="t", duration_seconds=60.0)
    sub = make_event(
        name="reviewer",
        task_id="t",
        parent_id=main.event_id,
        timestamp=BASE_TIME + timedelta(seconds=10),
        duration_seconds=80.0,  # finishes after the main loop: the task ends with it
        status=Status.FAILED,
    )
    broken = make_event(name="orchestrator", task_id="u", status=Status.FAILED)
    add_events(engine, main, sub, broken)
    tasks = {t.task_id: t for t in walk(engine, UsageFilter(), 10)}
    # A subagent's failure does not fail a task whose main loop completed.
    assert tasks["t"].status is Status.COMPLETED
    assert tasks["t"].ended_at == sub.timestamp + timedelta(seconds=80)
    assert tasks["t"].duration_seconds == pytest.approx(90.0)
    assert tasks["u"].status is Status.FAILED


def test_list_task_usage_totals_each_subtree(engine: Engine) -> None:
    events = a_task()
    main, sub, skill, running = events
    add_events(engine, *events)
    with Session(engine) as session:
        usage = {u.event_id: u for u in list_task_usage(session, task_id="task-1")}

    def known(*chosen: UsageEvent) -> float | None:
        costs = [e.cost_usd for e in chosen if e.cost_usd is not None]
        return sum(costs) if costs else None

    assert usage[main.event_id].total_cost_usd == pytest.approx(known(*events))
    assert usage[main.event_id].unpriced_invocations == 1  # the running skill has no cost yet
    assert usage[sub.event_id].total_cost_usd == pytest.approx(known(sub, skill))
    assert usage[sub.event_id].unpriced_invocations == 0
    assert usage[skill.event_id].total_cost_usd == pytest.approx(skill.cost_usd)
    assert (
        usage[running.event_id].total_cost_usd,
        usage[running.event_id].unpriced_invocations,
    ) == (
        None,
        1,
    )


def test_list_tasks_of_a_skill_and_of_both_kinds(engine: Engine) -> None:
    add_events(engine, *a_task("t1"), *a_task("t2"), make_event(name="pdf", task_id="t3"))
    skill_tasks = walk(engine, UsageFilter(kind=Kind.SKILL, name="pdf"), 10)
    any_tasks = walk(engine, UsageFilter(name="pdf"), 10)
    assert {t.task_id for t in skill_tasks} == {"t1", "t2"}
    assert {t.task_id for t in any_tasks} == {"t1", "t2", "t3"}
    assert all(t.failed == 1 for t in skill_tasks)


def test_list_tasks_project_filter_and_empty(engine: Engine) -> None:
    add_events(engine, *a_task("t1"), make_event(task_id="t2", project_id="q"))
    assert [t.task_id for t in walk(engine, UsageFilter(project_id="q"), 10)] == ["t2"]
    # Only the main loop of t1 was recorded with project p: the task within that project.
    assert [t.invocations for t in walk(engine, UsageFilter(project_id="p"), 10)] == [1]
    assert walk(engine, UsageFilter(project_id="nobody"), 10) == []


def test_list_tasks_rejects_foreign_cursors(engine: Engine) -> None:
    add_events(engine, make_event(name="a"), make_event(name="b"))
    with Session(engine) as session:
        stats_cursor = stats_by_name(session, filter=UsageFilter(), limit=1).next_cursor
        assert stats_cursor is not None
        for bad in [stats_cursor, "nonsense", "WyJ0YXNrcyIsInllc3RlcmRheSIsInQiXQ"]:
            with pytest.raises(InvalidFilter) as error:
                list_tasks(session, filter=UsageFilter(), after=bad)
            assert error.value.field == "after"
