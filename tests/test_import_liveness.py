"""Whether a session is over comes from its transcripts' own line times, never from the files'
modification times: copied, synced or restored transcripts have fresh ones."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from claude_api.tracking import Tracker
from tests.import_helpers import agents, assert_spend, run_import
from tests.test_import_transcripts import PROJECT, assert_rich_rows, compose_rich_session
from tests.transcripts import Ledger, Transcript, text_block

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
