"""Import one session: read what its transcripts gained since the last import, with the state
the last import left, and return the events to write and the rows to save once they are stored.

Incremental reads: each transcript is read from the offset where the last import stopped. What a
call needs from earlier parts (its start, its open skill window, its subagent's spend not yet
claimed) is kept in the state rows, so a call whose start was read by one import and whose
result is read by the next comes out as if the transcript had been read at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from claude_api.events import UsageEvent
from claude_api.importer.assembly import SessionAssembly
from claude_api.importer.discovery import SessionFiles, TranscriptFile
from claude_api.importer.lines import TranscriptReader
from claude_api.importer.settlement import MAIN_THREAD
from claude_api.importer.state import FileRow, SessionState, ThreadState, latest_line_at
from claude_api.models.task_sessions import SessionNames

REPLACED = "files replaced (read again)"
HEAD_BYTES = 4096


@dataclass
class HookReport:
    """What a Claude Code hook told about a session, beyond its transcripts."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool use id -> result
    stops: dict[str, str] = field(default_factory=dict)  # agent id -> SubagentStop time
    agent: str | None = None  # the agent the session runs as


@dataclass
class SessionImport:
    """The outcome of importing one session."""

    events: list[UsageEvent]
    rows: list[FileRow]
    files_read: int = 0
    bytes_read: int = 0
    lines_read: int = 0
    closed: bool = False


def import_session(
    session: SessionFiles,
    rows: Sequence[FileRow],
    *,
    source: str,
    stats: Counter[str],
    idle_before: datetime | None = None,
    ended: bool = False,
    hook: HookReport | None = None,
    on_bytes: Any = None,
    names: SessionNames | None = None,
) -> SessionImport:
    """Read `session`'s new lines and settle what they finish.

    `rows`: the session's saved rows. The session is over when `ended` (its SessionEnd hook),
    or when the newest line of its transcripts is dated `idle_before` or earlier (no line
    dated: nothing says it runs): then everything still open is written as finished or failed.
    `names`: the project and agent the executor records the session under, when it ran it.
    """
    by_path = {row.path: row for row in rows}
    main_path = str(session.main_path)
    main_row = by_path.get(main_path) or FileRow(main_path, session.session_id, None)
    state = SessionState.load(main_row.state.get("session"))
    threads: dict[str, ThreadState] = {
        MAIN_THREAD: ThreadState.load(main_row.state.get("thread"), None)
    }
    agent_rows: dict[str, FileRow] = {}
    for row in rows:  # transcripts gone from disk still hold links and unclaimed spend
        if row.agent_id is not None:
            agent_rows[row.agent_id] = row
            threads[row.agent_id] = ThreadState.load(row.state.get("thread"), row.agent_id)
    if hook is not None:
        state.hook_results.update(hook.results)
        state.hook_stops.update(hook.stops)
        if not state.main_written:
            state.agent = state.agent or hook.agent
    files: list[tuple[str, TranscriptFile, FileRow]] = []
    if session.main is not None:
        files.append((MAIN_THREAD, session.main, main_row))
    for agent_id, file in sorted(session.agents.items()):
        row = agent_rows.get(agent_id) or by_path.get(str(file.path))
        if row is None or row.path != str(file.path):
            row = FileRow(str(file.path), session.session_id, agent_id)
        agent_rows[agent_id] = row
        threads.setdefault(agent_id, ThreadState(agent_id=agent_id))
        files.append((agent_id, file, row))

    assembly = SessionAssembly(
        session_id=session.session_id,
        state=state,
        threads=threads,
        source=source,
        stats=stats,
        names=names,
    )
    outcome = SessionImport(events=[], rows=[])
    read_paths: set[Path] = set()

    def read(thread_id: str, file: TranscriptFile, row: FileRow, start: int, final: bool) -> None:
        reader = TranscriptReader(
            watch=assembly.watched(),
            windows_open=assembly.windows_open(thread_id),
            recent=threads[thread_id].recent,
            seen=assembly.state.seen,
            stats=stats,
        )
        chunk = reader.read(file.path, start, final=final)
        assembly.feed(thread_id, chunk)
        read_paths.add(file.path)
        outcome.bytes_read += chunk.offset - start
        outcome.lines_read += chunk.lines
        row.offset = chunk.offset
        row.lines += chunk.lines
        if on_bytes is not None:
            on_bytes(chunk.offset - start)

    for thread_id, file, row in files:
        thread = threads[thread_id]
        if file.agent_id is not None and not thread.meta:
            thread.meta = file.read_meta()
        start = row.offset
        moved = row.inode and (row.inode != file.inode or file.size < row.offset)
        # Another file now: the same one copied or restored (same beginning, no shorter) goes
        # on from the offset; a rewritten one is read again from the start.
        if moved and (file.size < row.offset or not same_head(file.path, row.state.get("head"))):
            stats[REPLACED] += 1
            start = 0
            row.lines = 0
            threads[thread_id] = ThreadState(agent_id=file.agent_id, meta=thread.meta)
            if thread_id == MAIN_THREAD:
                assembly.state = SessionState(agent=assembly.state.agent)
        if start == 0 and file.size:
            row.state["head"] = head_of(file.path, min(file.size, HEAD_BYTES))
        if file.size > start:
            read(thread_id, file, row, start, final=ended)
        row.size, row.mtime_ns, row.inode = file.size, file.mtime_ns, file.inode
    # Whether the session is over is read from its lines' own times, never from the files'
    # modification times: a copied, synced or restored transcript has fresh ones.
    last_at = latest_line_at(thread.last_at for thread in threads.values())
    closing = ended or is_idle(last_at, idle_before)
    if closing and not ended:
        for thread_id, file, row in files:
            if row.offset < file.size:  # a last line without its newline: read it as it is
                read(thread_id, file, row, row.offset, final=True)
    state = assembly.state
    outcome.files_read = len(read_paths)
    outcome.events = assembly.finish(closing=closing)
    outcome.closed = state.closed

    main_row.state = {
        "session": state.dump(),
        "thread": threads[MAIN_THREAD].dump(),
        "head": main_row.state.get("head"),
    }
    outcome.rows.append(main_row)
    for agent_id, row in agent_rows.items():
        row.state = {"thread": threads[agent_id].dump(), "head": row.state.get("head")}
        outcome.rows.append(row)
    return outcome


def head_of(path: Path, length: int) -> list[Any] | None:
    """A fingerprint of a transcript's first `length` bytes: [length, digest]."""
    try:
        with path.open("rb") as file:
            head = file.read(length)
    except OSError:
        return None
    return [len(head), hashlib.blake2b(head, digest_size=12).hexdigest()]


def same_head(path: Path, head: Any) -> bool:
    """Whether the transcript at `path` begins as the one fingerprinted as `head` did."""
    if not isinstance(head, list) or len(head) != 2:
        return False
    return head_of(path, int(head[0])) == head


def is_idle(last_at: datetime | None, idle_before: datetime | None) -> bool:
    """Whether a session whose newest line is dated `last_at` is over by `idle_before`."""
    return idle_before is not None and (last_at is None or last_at <= idle_before)


def needs_import(
    session: SessionFiles, rows: Sequence[FileRow], *, idle_before: datetime | None
) -> bool:
    """Whether importing `session` could change anything: a transcript changed (by size,
    modification time or inode), or its lines read so far say it is over and it was not
    closed yet."""
    by_path = {row.path: row for row in rows}
    tail_left = False
    for file in session.files:
        row = by_path.get(str(file.path))
        if row is None or not row.same_file(file.size, file.mtime_ns, file.inode):
            return True
        tail_left = tail_left or row.offset < file.size
    over = is_idle(latest_line_at(row.last_line_at for row in rows), idle_before)
    if tail_left:
        return over  # only a last line without its newline is left
    main = by_path.get(str(session.main_path))
    return over and (main is None or not main.state.get("session", {}).get("closed", False))


class SessionLock:
    """An advisory lock on a session's main transcript (else its first transcript), so that two
    imports (a hook and `claude-api import`) never read one session at once. Claude Code takes
    no such lock: its writes go on."""

    def __init__(self, session: SessionFiles) -> None:
        files = session.files
        self.path = files[0].path if files else None
        self._descriptor: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting up to `timeout` seconds; False when it could not be had."""
        if self.path is None:
            return True
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except OSError:
            return True  # gone: nothing to read, nothing to protect
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._descriptor = descriptor
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(descriptor)
                    return False
                time.sleep(0.02)

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing releases the lock
            self._descriptor = None


@contextmanager
def session_lock(session: SessionFiles, timeout: float) -> Iterator[bool]:
    """`SessionLock` held for a block; yields False when it could not be had in time."""
    lock = SessionLock(session)
    try:
        yield lock.acquire(timeout)
    finally:
        lock.release()
