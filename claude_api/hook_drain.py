"""Recording a hook inbox: its payloads, in arrival order, each as the hook records it
(`handle_hook`) at its arrival time, in local or team mode as the inbox's configuration says.
`drain` is what the worker (`claude_api.hook_worker`) does; `drain_all` is `claude-api hook
drain`.

A payload is removed once its events are stored (or spooled in team mode). When recording it
fails, the drain stops there and the payload waits for the next worker, up to
`hook_inbox.MAX_ATTEMPTS` attempts; when the database cannot be opened, everything waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from claude_api import hook_inbox
from claude_api.hook_inbox import Entry, Inbox

if TYPE_CHECKING:
    from claude_api.importer.hook import HookOutcome
    from claude_api.producers import Producer

logger = logging.getLogger(__name__)

SESSION_LOCK_SECONDS = 60.0  # a background worker may wait for an import of the same session
STALL_SECONDS = 300.0  # one payload taking longer: the worker exits, the next one tries again


@dataclass
class DrainReport:
    """What recording one inbox did: payloads recorded, given up after failed attempts, still
    waiting; `problem` says why some wait, `busy` that another worker held the inbox."""

    inbox: str
    recorded: int = 0
    given_up: int = 0
    waiting: int = 0
    dropped: int = 0
    busy: bool = False
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "inbox": self.inbox,
            "recorded": self.recorded,
            "given_up": self.given_up,
            "waiting": self.waiting,
            "dropped": self.dropped,
            "busy": self.busy,
            "problem": self.problem,
        }


def open_hook_producer(remote: bool | None) -> Producer:
    """The producer the hook records through, as it always opened it: short timeouts, and in
    team mode the spool's waiting events delivered first (within the hook's policy)."""
    from claude_api.config import Settings
    from claude_api.producers import open_producer

    settings = Settings()
    url = settings.database_url
    options = {"connect_args": {"connect_timeout": 2}} if url.startswith("postgresql") else {}
    policy = None
    if remote or settings.url:  # team mode: short timeouts, a bounded delivery of the spool
        from claude_api.sender import HOOK_POLICY as policy
    producer = open_producer(
        settings, remote=remote, policy=policy, retry_delays=(), engine_options=options
    )
    try:
        producer.deliver_spool()
    except BaseException:
        producer.close(5.0)
        raise
    return producer


def arrival_time(arrived_ns: int) -> datetime:
    """The arrival time, to the microsecond, as an aware UTC datetime."""
    seconds, nanoseconds = divmod(arrived_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanoseconds // 1000)


def record_payload(
    producer: Producer, payload: dict[str, Any], arrived_ns: int, lock_timeout: float
) -> HookOutcome:
    from claude_api.importer.hook import handle_hook

    return handle_hook(
        payload,
        engine=producer.engine,
        tracker=producer.tracker,
        now=arrival_time(arrived_ns),
        lock_timeout=lock_timeout,
    )


class _Watchdog:
    """Ends the worker when one payload takes longer than `STALL_SECONDS` (a connection stuck
    past every timeout), counting the attempt: the next worker tries again."""

    def __init__(self, inbox: Inbox, seconds: float = STALL_SECONDS) -> None:
        self.inbox, self.seconds = inbox, seconds
        self._current: tuple[Entry, float] | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="hook-watchdog", daemon=True).start()

    def begin(self, entry: Entry) -> None:
        self._current = (entry, time.monotonic())

    def end(self) -> None:
        self._current = None

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            current = self._current
            if current is not None and time.monotonic() - current[1] > self.seconds:
                entry = current[0]
                logger.error(
                    "hook payload %s took over %.0fs, not recorded; the next worker tries again",
                    entry.name,
                    self.seconds,
                )
                try:
                    self.inbox.failed(entry)
                finally:
                    logging.shutdown()
                    os._exit(1)


def drain(inbox: Inbox, lock: int, *, remote: bool) -> DrainReport:
    """Record every payload waiting in `inbox`, in order, holding the worker `lock` (a
    descriptor, closed on return). Stops at a payload that could not be recorded."""
    report = DrainReport(inbox.key)
    producer: Producer | None = None
    watchdog = _Watchdog(inbox)
    held = True
    try:
        while True:
            entries = inbox.entries()
            if not entries:
                # Released before looking once more: a hook that adds a payload after this
                # look finds the lock free and starts a worker of its own.
                _release(lock)
                held = bool(inbox.entries()) and relock(lock)
                if not held:
                    break
                claim(lock)
                continue
            for entry in entries:
                if producer is None:
                    try:
                        producer = open_hook_producer(remote or None)
                    except Exception as error:
                        report.problem = f"the database cannot be opened: {describe(error)}"
                        logger.error(
                            "%d hook payloads wait in %s: %s",
                            len(entries),
                            inbox.directory,
                            report.problem,
                        )
                        return report
                watchdog.begin(entry)
                try:
                    done = _record_entry(inbox, entry, producer, report)
                finally:
                    watchdog.end()
                if not done:
                    return report
        return report
    finally:
        watchdog.stop()
        if producer is not None:
            producer.close(30.0)
        if held:
            _release(lock)
        os.close(lock)
        report.waiting = len(inbox.entries())
        report.dropped = inbox.dropped()


def _record_entry(inbox: Inbox, entry: Entry, producer: Producer, report: DrainReport) -> bool:
    """Record one payload; False when the drain must stop (it waits for the next worker)."""
    try:
        data = inbox.read(entry)
    except FileNotFoundError:
        return True
    try:
        payload = json.loads(data)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        logger.error("hook payload %s is not a JSON object, dropped: %s", entry.name, error)
        inbox.remove(entry)
        return True
    named = f"hook {payload.get('hook_event_name')} of session {payload.get('session_id')}"
    try:
        outcome = record_payload(producer, payload, entry.arrived_ns, SESSION_LOCK_SECONDS)
    except Exception as error:
        attempts = entry.attempts + 1
        if attempts >= hook_inbox.MAX_ATTEMPTS:
            logger.error(
                "%s not recorded, given up after %d attempts: %s", named, attempts, describe(error)
            )
            inbox.remove(entry)
            report.given_up += 1
            return True
        report.problem = f"{named} not recorded: {describe(error)}"
        logger.error(
            "%s not recorded (attempt %d of %d; the next worker tries again): %s",
            named,
            attempts,
            hook_inbox.MAX_ATTEMPTS,
            describe(error),
        )
        inbox.failed(entry)
        return False
    if outcome.busy:
        report.problem = f"{named} waits: {outcome.skipped}"
        logger.warning("%s waits for the next worker: %s", named, outcome.skipped)
        return False
    if outcome.skipped:
        logger.info("%s: nothing imported: %s", named, outcome.skipped)
    inbox.remove(entry)
    report.recorded += 1
    return True


def claim(lock: int) -> None:
    """Write this process's id into the worker lock it holds (`Inbox.worker_pid`)."""
    os.ftruncate(lock, 0)
    os.pwrite(lock, f"{os.getpid()}\n".encode(), 0)


def _release(lock: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(lock, 0)  # only a worker holding it may empty it
        fcntl.flock(lock, fcntl.LOCK_UN)


def relock(lock: int) -> bool:
    """Take the worker lock again on its descriptor; False when another worker has it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # another worker took over
    return True


def describe(error: BaseException) -> str:
    """An error in one line, as the tracker describes it."""
    from claude_api.tracking import describe

    return describe(error)


# ---- `claude-api hook drain` -------------------------------------------------------------------


def drain_all(*, timeout: float, inbox_root: str | None = None) -> list[DrainReport]:
    """Record what waits in every inbox of this data directory now: this configuration's in
    this process, others' by a worker run with their own kept configuration. A worker already
    recording an inbox is waited for, up to `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    reports = []
    for inbox in hook_inbox.inboxes(inbox_root):
        lock = inbox.lock(max(deadline - time.monotonic(), 0.0))
        if lock is None:
            reports.append(
                DrainReport(inbox.key, waiting=len(inbox.entries()), busy=True, problem="busy")
            )
            continue
        try:
            config = inbox.saved_configuration()
        except (OSError, ValueError) as error:
            os.close(lock)
            problem = f"its configuration cannot be read: {error}"
            reports.append(DrainReport(inbox.key, waiting=len(inbox.entries()), problem=problem))
            continue
        remote = bool(config.get("remote"))
        own = hook_inbox.key_of(hook_inbox.configuration(remote=remote)) == inbox.key
        if own:
            reports.append(drain(inbox, lock, remote=remote))
        else:
            reports.append(_drain_elsewhere(inbox, lock, config, deadline))
    return reports


def _drain_elsewhere(
    inbox: Inbox, lock: int, config: dict[str, Any], deadline: float
) -> DrainReport:
    before = len(inbox.entries())
    kept = hook_inbox.LOCATION_VARIABLES
    environment = {
        name: value
        for name, value in os.environ.items()
        if not (name.upper().startswith("CLAUDE_API_") or name in kept)
    }
    environment.update(config.get("environment") or {})
    report = DrainReport(inbox.key)
    try:
        argv = [sys.executable, "-P", "-m", hook_inbox.WORKER_MODULE, inbox.directory]
        argv += ["--lock-fd", str(lock)]
        result = subprocess.run(
            argv,
            env=environment,
            pass_fds=(lock,),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            check=False,
        )
        if result.returncode:
            report.problem = f"its worker exited with {result.returncode}"
    except subprocess.TimeoutExpired:
        report.problem = "its worker did not finish in time"
    finally:
        os.close(lock)
    report.waiting = len(inbox.entries())
    report.recorded = max(before - report.waiting, 0)
    report.dropped = inbox.dropped()
    return report
