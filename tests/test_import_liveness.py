"""Whether a session is over comes from its transcripts' own line times, never from the files'
modification times: copied, synced or restored transcripts have fresh ones."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.models import queries
from claude_api.models.filters import Period, UsageFilter
from claude_api.tracking import Tracker
from tests.import_helpers import (
    TOKEN_FIELDS,
    agents,
    assert_spend,
    one,
    run_import,
    skills,
    truth_of,
)
from tests.test_import_corpus import calls_of, compose_corpus
from tests.test_import_transcripts import (
    PROJECT,
    assert_rich_rows,
    compose_rich_session,
)
from tests.transcripts import (
    HAIKU,
    Ledger,
    Transcript,
    agent_call,
    other_call,
    skill_call,
    text_block,
    write_meta,
)

IDLE = timedelta(minutes=30)  # the import's default
CWD = "/home/dev/demo"


def _set_mtimes(root: Path, moment: datetime) -> None:
    for path in root.rglob("*"):
        os.utime(path, (moment.timestamp(), moment.timestamp()))


def test_copied_transcripts_of_ended_sessions_are_over(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """A transcript tree copied from another machine (months old lines, fresh file times)
    imports as finished sessions with all their tokens."""
    original = tmp_path / "laptop"
    composed = compose_rich_session(original)
    _set_mtimes(original, composed.main.times[-1])  # as they were where they were written
    copy = tmp_path / "restored"
    shutil.copytree(original, copy, copy_function=shutil.copy)  # fresh modification times
    fresh = datetime.now(UTC).timestamp() - 3600
    assert all(path.stat().st_mtime > fresh for path in copy.rglob("*.jsonl"))

    summary = run_import(engine, tracker, copy, idle=IDLE)
    assert (summary.sessions_closed, summary.sessions_live) == (1, 0)
    assert all(row.status != "running" for row in agents(engine))
    assert_rich_rows(engine, composed)


def test_recent_lines_run_whatever_the_file_times(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """A session whose last line is minutes old is running, even when its file's modification
    time is old (restored with its original times, or a clock that went back)."""
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-0000000000d1"
    now = datetime.now(UTC)
    main = Transcript(ledger, session_id=session, cwd=CWD, start=now - timedelta(minutes=5))
    main.prompt("hi")
    main.respond(text_block("working"), usage=(1, 2, 3, 4))
    main.write(tmp_path / PROJECT / f"{session}.jsonl", mtime=now - timedelta(days=200))

    summary = run_import(engine, tracker, tmp_path, idle=IDLE, now=now)
    assert (summary.sessions_closed, summary.sessions_live) == (0, 1)
    [row] = agents(engine)
    assert row.status == "running"

    # Time passes; nothing is written: the lines say the session is over.
    later = run_import(engine, tracker, tmp_path, idle=IDLE, now=now + timedelta(hours=1))
    assert (later.sessions_closed, later.bytes_read) == (1, 0)
    [row] = agents(engine)
    assert row.status == "completed"
    assert_spend(row, ledger, "main")


def _totals(engine: Engine, session_id: str, day: datetime) -> list[tuple[Any, ...]]:
    """(running, input tokens, output tokens, cost) of a session as its stats and its day's
    report count them."""
    with Session(engine) as session:
        stats = queries.usage_stats(session, filter=UsageFilter(task_id=session_id))
        report = queries.usage_report(
            session, period=Period.DAY, on=day.date(), filter=UsageFilter(task_id=session_id)
        )
    return [
        (totals.running, totals.input_tokens, totals.output_tokens, totals.total_cost_usd)
        for totals in (stats, report.totals)
    ]


def _expected(ledger: Ledger, running: int) -> list[tuple[Any, ...]]:
    """What `_totals` must say: every response the ledger booked, counted once."""
    booked = ledger.booked
    once = (
        running,
        sum(entry.input for entry in booked),
        sum(entry.output for entry in booked),
        pytest.approx(ledger.total_cost(), rel=1e-9),
    )
    return [once, once]


def test_a_live_session_counts_what_it_spent_so_far(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """The session a user is working in shows its spend so far after one import: its main
    thread, a running subagent and a skill still in its turn; after it ends, every response
    counts exactly once."""
    now = datetime.now(UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    start = max(now - timedelta(minutes=20), midnight)  # one day, for the day's report
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-0000000000d2"
    project = tmp_path / PROJECT
    agent_path = project / session / "subagents" / "agent-a1b2c3d4e5f60718.jsonl"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=start, version="2.1.331")
    main.prompt("review the PR")
    main.respond(text_block("On it."), usage=(10, 100, 5000, 400))
    review = skill_call("review-pr")
    main.respond(review, usage=(11, 20, 5100, 0))
    main.skill_result(review["id"], "review-pr")
    main.respond(
        other_call("Bash"), usage=(12, 300, 5200, 50), owner="review-pr",
        attributionSkill="review-pr",
    )  # fmt: skip
    call = agent_call("code-reviewer")
    main.respond(call, usage=(13, 40, 5300, 0))
    sub = Transcript(
        ledger, session_id=session, cwd=CWD, start=main.clock, owner="reviewer",
        agent_id="a1b2c3d4e5f60718", version="2.1.331",
    )  # fmt: skip
    sub.prompt("Do the work well")
    sub.respond(other_call("Grep"), model=HAIKU, usage=(4, 80, 2000, 700))
    main.write(project / f"{session}.jsonl")
    sub.write(agent_path)
    write_meta(agent_path, agentType="code-reviewer", toolUseId=call["id"])

    # 1. One import while it runs: everything read so far is counted, once.
    live = run_import(engine, tracker, tmp_path, idle=IDLE, now=sub.clock)
    assert live.sessions_live == 1
    assert sorted((row.agent_name, row.status) for row in agents(engine)) == [
        ("code-reviewer", "running"), ("main", "running"),
    ]  # fmt: skip
    assert [(row.skill_name, row.status) for row in skills(engine)] == [("review-pr", "running")]
    assert_spend(one(agents(engine), "main"), ledger, "main")
    assert_spend(one(agents(engine), "code-reviewer"), ledger, "reviewer")
    assert_spend(one(skills(engine), "review-pr"), ledger, "review-pr")
    assert _totals(engine, session, start) == _expected(ledger, running=3)

    # 2. It goes on: the subagent works on and finishes, the turn ends, a new one begins.
    sub.tool_result("toolu_grep", content="src/app.py:3: x", seconds=1)
    sub.respond(text_block("Found 2 issues"), model=HAIKU, usage=(6, 410, 2400, 300))
    main.clock = sub.clock
    main.agent_result(call["id"], "a1b2c3d4e5f60718", agent_type="code-reviewer")
    main.respond(text_block("Reviewed."), usage=(14, 200, 5400, 0))
    main.turn_duration()
    main.prompt("and now the docs")
    main.respond(text_block("Writing."), usage=(15, 250, 5500, 0))
    main.write(project / f"{session}.jsonl")
    sub.write(agent_path)
    live = run_import(engine, tracker, tmp_path, idle=IDLE, now=main.clock)
    assert live.sessions_live == 1
    assert one(agents(engine), "code-reviewer").status == "completed"
    assert one(skills(engine), "review-pr").status == "completed"
    assert_spend(one(agents(engine), "main"), ledger, "main")
    assert _totals(engine, session, start) == _expected(ledger, running=1)

    # 3. It ended: the same totals, every row finished, each response on one row.
    over = run_import(engine, tracker, tmp_path, idle=IDLE, now=main.clock + timedelta(hours=1))
    assert over.sessions_closed == 1
    assert all(row.status == "completed" for row in agents(engine) + skills(engine))
    for row, label in (
        (one(agents(engine), "main"), "main"),
        (one(agents(engine), "code-reviewer"), "reviewer"),
        (one(skills(engine), "review-pr"), "review-pr"),
    ):
        assert_spend(row, ledger, label)
    assert _totals(engine, session, start) == _expected(ledger, running=0)


def test_spend_so_far_never_counts_a_response_twice(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """Sessions imported while they are being written (subagents in both layouts, failed and
    background ones, resumed ones, attributed skills): at every cut the rows never hold more
    than the transcripts written so far, a running row's spend only grows, a finished row
    never changes; at the end they hold it all, one row per call."""
    corpus = compose_corpus(tmp_path, seed=3, sessions=8)
    moments = corpus.moments()
    before: dict[object, tuple[str, list[int]]] = {}
    for moment in moments[:: max(1, len(moments) // 40)]:
        corpus.write(until=moment)
        run_import(engine, tracker, tmp_path, idle=IDLE, now=moment)
        rows = agents(engine) + skills(engine)
        truth = truth_of(tmp_path)
        for name in TOKEN_FIELDS:
            assert sum(getattr(row, name) or 0 for row in rows) <= truth.tokens[name], moment
        assert sum(row.cost_usd or 0.0 for row in rows) <= truth.cost * (1 + 1e-9), moment
        now = {row.event_id: (row.status, [getattr(row, name) or 0 for name in TOKEN_FIELDS])
               for row in rows}  # fmt: skip
        for event_id, (status, spent) in before.items():
            if status != "running":
                assert now[event_id] == (status, spent), moment  # finished: never changes
            else:
                assert all(new >= old for new, old in zip(now[event_id][1], spent, strict=True))
        before = now
    corpus.write()
    summary = run_import(engine, tracker, tmp_path, idle=IDLE)
    assert summary.sessions_live == 0
    rows = agents(engine) + skills(engine)
    truth = truth_of(tmp_path)
    for name in TOKEN_FIELDS:
        assert sum(getattr(row, name) or 0 for row in rows) == truth.tokens[name], name
    assert sum(row.cost_usd or 0.0 for row in rows) == pytest.approx(truth.cost, rel=1e-9)
    assert calls_of(rows) == corpus.calls
