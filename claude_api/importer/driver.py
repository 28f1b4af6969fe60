"""`import_transcripts`: import every session under some paths through the tracker, in bulk.

Events go out through `Tracker.emit` (queued, written in batches by the tracker's thread while
the next sessions are read). A large import reads sessions in several processes (sessions are
independent), handing them back in order. Every so many events the import waits for the store;
only when the store took them all are the sessions' read positions saved, so a failed write is
read again next time (the event ids make that harmless) and never skipped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from claude_api.events import Kind, Status
from claude_api.importer.discovery import SessionFiles, default_roots, discover, unreadable
from claude_api.importer.session import SessionImport, SessionLock, import_session, needs_import
from claude_api.importer.state import FileRow, StateStore
from claude_api.models.task_sessions import SessionNames, registered_names
from claude_api.tracking import Tracker

logger = logging.getLogger(__name__)

SOURCE = "transcript-import"
DEFAULT_IDLE = timedelta(minutes=30)
PARALLEL_FROM_BYTES = 64 * 1024 * 1024  # less to read is not worth starting processes
MAX_WORKERS = 4


@dataclass(frozen=True)
class ImportOptions:
    """How an import runs.

    `idle`: a session whose newest transcript line (by the line's own `timestamp`, never the
    file's modification time) is older than this is over: its main thread and every call still
    open are written as finished. A younger one may still be running: its open invocations are
    written as running, with what they spent so far, and finished by a later import (or the
    SessionEnd hook).
    """

    source: str = SOURCE
    idle: timedelta = DEFAULT_IDLE
    now: datetime | None = None
    lock_timeout: float = 30.0
    checkpoint_events: int = 20_000
    checkpoint_sessions: int = 200
    workers: int | None = None  # processes reading sessions; None: one per core for big imports


@dataclass
class ImportSummary:
    """What an import did."""

    sessions: int = 0
    sessions_imported: int = 0
    sessions_closed: int = 0
    sessions_live: int = 0
    sessions_busy: int = 0
    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    lines_read: int = 0
    events: int = 0
    agents: int = 0  # finished agent invocations written
    skills: int = 0
    events_not_stored: int = 0
    sessions_failed: int = 0  # not imported because of an unexpected error (logged)
    skipped: Counter[str] = field(default_factory=Counter)  # lines, by reason
    transcripts_skipped: dict[str, str] = field(default_factory=dict)  # path -> why
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether everything found was stored, but for the transcripts it had to skip."""
        return self.events_not_stored == 0 and self.sessions_failed == 0

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["skipped"] = dict(sorted(self.skipped.items()))
        data["megabytes_per_second"] = (
            round(self.bytes_read / 1e6 / self.seconds, 1) if self.seconds else None
        )
        return data


def import_transcripts(
    paths: Sequence[Path],
    *,
    engine: Engine,
    tracker: Tracker,
    options: ImportOptions = ImportOptions(),
    progress: Callable[[int], AbstractContextManager[Callable[[int], None]]] | None = None,
) -> ImportSummary:
    """Import the sessions under `paths` (default: Claude Code's transcript directories).

    `progress(total_bytes)`, when given, is entered around the reading and yields
    `advance(bytes)` (e.g. `claude_api.client.output.byte_progress`).
    """
    started = time.perf_counter()
    summary = ImportSummary()
    store = StateStore(engine)
    rows = store.load()
    known = {path: row.session_id for path, row in rows.items() if row.agent_id is not None}
    found = discover(list(paths) or default_roots(), known_sessions=known)
    sessions = found.sessions
    for skipped in found.skipped:
        logger.warning("transcript %s skipped: %s", skipped.path, skipped.reason)
        summary.transcripts_skipped[str(skipped.path)] = skipped.reason
    rows_by_session: dict[str, list[FileRow]] = {}
    for row in rows.values():
        rows_by_session.setdefault(row.session_id, []).append(row)
    now = options.now or datetime.now(UTC)
    idle_before = now - options.idle
    summary.sessions = len(sessions)
    summary.files = sum(len(session.files) for session in sessions)

    work = []
    total = 0
    for session in sessions:
        session_rows = rows_by_session.get(session.session_id, [])
        if needs_import(session, session_rows, idle_before=idle_before):
            work.append((session, session_rows))
            by_path = {row.path: row for row in session_rows}
            for file in session.files:
                row = by_path.get(str(file.path))
                total += file.size - (row.offset if row and row.inode == file.inode else 0)
    names = registered_names(engine, [session.session_id for session, _ in work])
    workers = options.workers
    if workers is None:
        workers = min(os.cpu_count() or 1, MAX_WORKERS) if total >= PARALLEL_FROM_BYTES else 1
    workers = max(1, min(workers, len(work)))
    checkpoint = _Checkpoint(tracker, store, summary)
    # The worker processes are forked before any thread of ours runs (the tracker's writer,
    # the progress bar): a fork copies only the forking thread.
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        showing = progress(max(total, 0)) if progress is not None else nullcontext(None)
        with showing as advance:
            outcomes = (
                _in_parallel(pool, work, idle_before, options, summary, names)
                if pool is not None
                else _in_turn(work, idle_before, options, summary, advance, names)
            )
            for lock, outcome, stats in outcomes:
                summary.skipped.update(stats)
                if pool is not None and advance is not None:
                    advance(outcome.bytes_read)
                _count(summary, outcome)
                for event in outcome.events:
                    tracker.emit(event)
                checkpoint.add(outcome.rows, len(outcome.events), lock)
                if (
                    checkpoint.events >= options.checkpoint_events
                    or checkpoint.sessions >= options.checkpoint_sessions
                ):
                    checkpoint.commit()
            checkpoint.commit()
    finally:
        checkpoint.release()
        if pool is not None:
            pool.terminate()
            pool.join()
    summary.seconds = time.perf_counter() - started
    return summary


_Outcomes = Iterator[tuple[SessionLock, SessionImport, Counter[str]]]


def _in_turn(
    work: list[tuple[SessionFiles, list[FileRow]]],
    idle_before: datetime,
    options: ImportOptions,
    summary: ImportSummary,
    advance: Callable[[int], None] | None,
    names: dict[str, SessionNames],
) -> _Outcomes:
    for session, rows in work:
        lock = _lock(session, options, summary)
        if lock is None:
            continue
        stats: Counter[str] = Counter()
        try:
            outcome = import_session(
                session, rows, source=options.source, idle_before=idle_before, stats=stats,
                on_bytes=advance, names=names.get(session.session_id),
            )  # fmt: skip
        except Exception as error:
            lock.release()
            _not_imported(summary, session, error)
            continue
        yield lock, outcome, stats


def _in_parallel(
    pool: Any,
    work: list[tuple[SessionFiles, list[FileRow]]],
    idle_before: datetime,
    options: ImportOptions,
    summary: ImportSummary,
    names: dict[str, SessionNames],
) -> _Outcomes:
    """Sessions read by the pool's processes, a few ahead, handed back in order."""
    ahead: deque[tuple[SessionFiles, SessionLock, Any]] = deque()
    queue = iter(work)
    window = pool._processes * 4  # the pool's size, times a few sessions each
    while True:
        while len(ahead) < window:
            item = next(queue, None)
            if item is None:
                break
            session, rows = item
            lock = _lock(session, options, summary)
            if lock is not None:
                job = pool.apply_async(
                    _import_one,
                    (session, rows, options.source, idle_before, names.get(session.session_id)),
                )
                ahead.append((session, lock, job))
        if not ahead:
            return
        session, lock, job = ahead.popleft()
        try:
            outcome, stats = job.get()
        except Exception as error:
            lock.release()
            _not_imported(summary, session, error)
            continue
        yield lock, outcome, stats


def _import_one(
    session: SessionFiles,
    rows: list[FileRow],
    source: str,
    idle_before: datetime,
    names: SessionNames | None,
) -> tuple[SessionImport, Counter[str]]:
    """One session, in a worker process."""
    stats: Counter[str] = Counter()
    outcome = import_session(
        session, rows, source=source, idle_before=idle_before, stats=stats, names=names
    )
    return outcome, stats


def _not_imported(summary: ImportSummary, session: SessionFiles, error: Exception) -> None:
    """A session whose import failed is left for the next import; the others go on."""
    if isinstance(error, OSError):
        path = str(error.filename or session.main_path)
        reason = f"{unreadable(error)}; session {session.session_id} not imported"
        logger.error("transcript %s skipped: %s", path, reason)
    else:  # a defect: say so loudly, but do not lose the other sessions to it
        summary.sessions_failed += 1
        path = str(session.main_path)
        reason = f"session not imported: {type(error).__name__}: {error}"
        logger.error("transcript %s skipped: %s", path, reason, exc_info=error)
    summary.transcripts_skipped[path] = reason


def _lock(
    session: SessionFiles, options: ImportOptions, summary: ImportSummary
) -> SessionLock | None:
    lock = SessionLock(session)
    if lock.acquire(options.lock_timeout):
        return lock
    summary.sessions_busy += 1
    logger.warning("session %s is being imported elsewhere; skipped", session.session_id)
    return None


def _count(summary: ImportSummary, outcome: SessionImport) -> None:
    summary.sessions_imported += 1
    summary.files_read += outcome.files_read
    summary.bytes_read += outcome.bytes_read
    summary.lines_read += outcome.lines_read
    if outcome.closed:
        summary.sessions_closed += 1
    else:
        summary.sessions_live += 1
    summary.events += len(outcome.events)
    for event in outcome.events:
        if event.status is not Status.RUNNING:
            if event.kind is Kind.AGENT:
                summary.agents += 1
            else:
                summary.skills += 1


class _Checkpoint:
    """Sessions whose events were emitted but whose read positions are not saved yet; their
    locks are held until they are."""

    def __init__(self, tracker: Tracker, store: StateStore, summary: ImportSummary) -> None:
        self.tracker = tracker
        self.store = store
        self.summary = summary
        self.rows: list[FileRow] = []
        self.locks: list[SessionLock] = []
        self.events = 0
        self.sessions = 0
        self._dropped = tracker.stats.dropped

    def add(self, rows: list[FileRow], events: int, lock: SessionLock) -> None:
        self.rows.extend(rows)
        self.locks.append(lock)
        self.events += events
        self.sessions += 1

    def commit(self) -> None:
        if not self.sessions:
            return
        self.tracker.flush()
        dropped = self.tracker.stats.dropped - self._dropped
        self._dropped = self.tracker.stats.dropped
        if self.tracker.store is None:
            dropped = self.events
        if dropped:
            self.summary.events_not_stored += dropped
            logger.error(
                "%d events were not stored; these %d sessions will be read again next time",
                dropped,
                self.sessions,
            )
        else:
            self.store.save(self.rows)
        self.rows, self.events, self.sessions = [], 0, 0
        self.release()

    def release(self) -> None:
        for lock in self.locks:
            lock.release()
        self.locks = []
