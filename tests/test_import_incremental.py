"""Incremental import: a grown transcript is read from where the last import stopped, and calls
whose start and result land in different imports come out as if read at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from claude_api.tracking import Tracker
from tests.import_helpers import agents, assert_spend, event_id, one, run_import, skills, tokens_of
from tests.test_import_transcripts import (
    CWD,
    PROJECT,
    SESSION,
    START,
    Composed,
    assert_rich_rows,
    compose_rich_session,
)
from tests.transcripts import Ledger, Transcript, skill_call, text_block

LIVE = timedelta(minutes=30)  # with `now` at the last line written, the session is running


def write_until(composed: Composed, root: Path, cut: timedelta | None) -> None:
    """Write every transcript of the rich session as it stood `cut` after its start."""
    project = root / PROJECT
    transcripts = [(composed.main, project / f"{SESSION}.jsonl")] + [
        (sub, project / SESSION / "subagents" / f"agent-{sub.agent_id}.jsonl")
        for sub in composed.subagents.values()
    ]
    for transcript, path in transcripts:
        if cut is None:
            transcript.write(path)
            continue
        moment = START + cut
        count = sum(1 for at in transcript.times if at <= moment)
        if count:
            transcript.write(path, upto=count)
        elif path.exists():
            path.unlink()


def test_grown_transcripts_add_only_the_new_events(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    composed = compose_rich_session(tmp_path)
    reviewer_started = composed.starts["reviewer"] - START
    lint_started = composed.starts["lint-fix"] - START

    # 1. Cut inside the first response: two of its three lines, with placeholder output counts.
    write_until(composed, tmp_path, timedelta(seconds=3.015))
    first = run_import(engine, tracker, tmp_path, idle=LIVE, now=START + timedelta(seconds=3.015))
    assert (first.sessions_live, first.sessions_closed) == (1, 0)
    [main] = agents(engine)
    assert (main.agent_name, main.status) == ("main", "running")
    # What it spent so far: the first response, with the placeholder output count of its
    # lines written so far.
    response = composed.ledger.of("main")[0]
    assert (main.input_tokens, main.output_tokens, main.cache_read_tokens) == (
        response.input, 1, response.cache_read,
    )  # fmt: skip

    # 2. The reviewer was called and has started; its result is not there yet.
    cut = reviewer_started + timedelta(seconds=5)
    write_until(composed, tmp_path, cut)
    second = run_import(engine, tracker, tmp_path, idle=LIVE, now=START + cut)
    assert second.events == 2  # the reviewer's start, the main thread's spend so far
    reviewer = one(agents(engine), "code-reviewer")
    assert (reviewer.status, reviewer.timestamp) == ("running", composed.starts["reviewer"])
    assert_spend(reviewer, composed.ledger, "reviewer", until=START + cut)
    assert_spend(one(agents(engine), "main"), composed.ledger, "main", until=START + cut)

    # 3. The reviewer finished (its start and its result came in different imports); a skill
    #    has started and its turn is still going.
    cut = lint_started + timedelta(seconds=0.6)
    write_until(composed, tmp_path, cut)
    run_import(engine, tracker, tmp_path, idle=LIVE, now=START + cut)
    reviewer = one(agents(engine), "code-reviewer")
    assert reviewer.status == "completed"
    assert_spend(reviewer, composed.ledger, "reviewer")
    assert one(skills(engine), "lint-fix").status == "running"
    assert_spend(one(agents(engine), "main"), composed.ledger, "main", until=START + cut)
    finished_before = sum(row.status != "running" for row in agents(engine) + skills(engine))

    # 4. Everything, and the session is over.
    write_until(composed, tmp_path, None)
    last = run_import(engine, tracker, tmp_path)
    assert last.events == 10 - finished_before  # only finishes of what was not finished
    assert_rich_rows(engine, composed)

    # 5. Nothing new: nothing read, nothing written.
    again = run_import(engine, tracker, tmp_path)
    assert (again.bytes_read, again.events) == (0, 0)
    assert_rich_rows(engine, composed)


def test_a_line_still_being_written_waits(engine: Engine, tracker: Tracker, tmp_path: Path) -> None:
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-0000000000aa"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START)
    main.prompt("hi")
    main.respond(text_block("a"), usage=(1, 2, 3, 4))
    path = tmp_path / PROJECT / f"{session}.jsonl"
    main.write(path)
    full = path.read_text()
    cut = full.index('"output_tokens"')  # the last line, cut in the middle
    path.write_text(full[:cut])
    summary = run_import(engine, tracker, tmp_path, idle=LIVE, now=main.clock)
    assert summary.skipped["malformed"] == 0
    path.write_text(full)
    run_import(engine, tracker, tmp_path)
    [row] = agents(engine)
    assert_spend(row, ledger, "main")


def test_a_resumed_session_is_a_new_run_of_main(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """A session imported as over, then continued in the same file: the new part is a second
    invocation of `main` (and its calls are inside that one), so totals stay exact."""
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-0000000000bb"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START)
    main.prompt("first")
    main.respond(text_block("a"), usage=(1, 10, 100, 0))
    path = tmp_path / PROJECT / f"{session}.jsonl"
    main.write(path)
    run_import(engine, tracker, tmp_path)
    main.clock += timedelta(days=1)
    ledger_before = ledger.tokens("main")
    main.prompt("again")
    skill = skill_call("lint-fix")
    main.respond(skill, usage=(2, 20, 200, 0), owner="resumed")
    main.skill_result(skill["id"], "lint-fix")
    main.respond(text_block("b"), usage=(3, 30, 300, 0), owner="resumed")
    main.write(path)
    summary = run_import(engine, tracker, tmp_path)
    assert summary.events == 2
    first, resumed = agents(engine)
    assert (first.agent_name, resumed.agent_name) == ("main", "main")
    assert first.event_id == event_id(session, "main")
    assert resumed.event_id == event_id(session, "main#1")
    assert {name: getattr(first, name) for name in ledger_before} == ledger_before
    assert_spend(resumed, ledger, "resumed")
    [lint] = skills(engine)
    assert lint.parent_id == resumed.event_id
    assert tokens_of([first, resumed]) == ledger.total_tokens()


@pytest.mark.parametrize("cut_lines", range(1, 37, 3))
def test_any_cut_gives_the_same_rows(
    cut_lines: int, engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """Wherever the first import stops, the second ends with the rows of a single import."""
    composed = compose_rich_session(tmp_path)
    main_path = tmp_path / PROJECT / f"{SESSION}.jsonl"
    composed.main.write(main_path, upto=cut_lines)
    times = composed.main.times  # one per line, but for the raw lines at the end
    run_import(engine, tracker, tmp_path, idle=LIVE, now=times[min(cut_lines, len(times)) - 1])
    composed.main.write(main_path)
    run_import(engine, tracker, tmp_path)
    assert_rich_rows(engine, composed)


def test_a_restored_copy_goes_on_from_the_offset(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    """The same transcript under a new inode (copied back, restored) is not read again; one
    rewritten with other content is."""
    ledger = Ledger()
    session = "0a1b2c3d-0000-4000-8000-0000000000cc"
    main = Transcript(ledger, session_id=session, cwd=CWD, start=START)
    main.prompt("hi")
    main.respond(text_block("a"), usage=(1, 10, 100, 0))
    path = tmp_path / PROJECT / f"{session}.jsonl"
    main.write(path)
    run_import(engine, tracker, tmp_path, idle=LIVE, now=main.clock)
    main.respond(text_block("b"), usage=(2, 20, 200, 0))
    copy = path.with_name("copy.tmp")
    copy.write_text(main.text())
    copy.replace(path)  # a new inode with the same beginning, grown
    summary = run_import(engine, tracker, tmp_path)
    assert summary.skipped["files replaced (read again)"] == 0
    assert summary.bytes_read < path.stat().st_size
    [row] = agents(engine)
    assert_spend(row, ledger, "main")

    other = Transcript(Ledger(), session_id=session, cwd=CWD, start=START)
    other.prompt("something else entirely")
    copy.write_text(other.text())
    copy.replace(path)
    rewritten = run_import(engine, tracker, tmp_path)
    assert rewritten.skipped["files replaced (read again)"] == 1
