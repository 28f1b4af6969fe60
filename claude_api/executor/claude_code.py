"""Run one task with Claude Code (`claude -p ... --output-format stream-json --verbose`).

The run is tracked as it streams: the task's own agent invocation, and through `StreamFollower`
every subagent and skill it calls. Tracking only queues events; it never changes the outcome.
The task is one Claude Code session (`task_session`): its task id is the session id, and its
rows are those the transcript import and the hook record for the same session.
"""

from __future__ import annotations

import logging
import math
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine

from claude_api.config import Settings
from claude_api.events import Kind, Status, UsageEvent, truncate_error
from claude_api.executor.emit import EventSink, build_event, finish_event
from claude_api.executor.process import TailReader, Watchdog, exit_text, kill_group
from claude_api.executor.stream import StreamFollower
from claude_api.executor.task_session import (
    InvalidTask,
    check_text,
    claim_session,
    main_event_id,
    session_id_for,
)
from claude_api.importer.settlement import MAIN_AGENT, session_namespace
from claude_api.models.task_sessions import SessionNames
from claude_api.tracking import Tracker

logger = logging.getLogger(__name__)

SOURCE = "executor"
DEFAULT_AGENT = MAIN_AGENT  # Claude Code's own main loop, named as the import names it
DEFAULT_KILL_GRACE = 5.0
STDERR_IN_ERROR = 2_000  # characters of stderr's end quoted in an error message
SUCCESS = "success"


@dataclass(frozen=True)
class TaskResult:
    """The outcome of one task, as Claude Code reported it; tracking never changes it."""

    task_id: str  # the id of the Claude Code session it ran as
    status: Status
    result: str | None
    error: str | None
    duration_seconds: float
    cost_usd: float | None  # everything the run spent, subagents included, as reported
    session_id: str | None
    exit_code: int | None  # None when the process never started; negative: killed by a signal
    agent: str
    model: str | None
    num_turns: int | None
    event_id: uuid.UUID  # the task's own invocation in the usage tables

    @property
    def ok(self) -> bool:
        return self.status is Status.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["status"] = self.status.value
        data["event_id"] = str(self.event_id)
        return data


def claude_command(
    claude_bin: str, prompt: str, agent: str | None, session_id: str | None = None
) -> list[str]:
    """The argv of a print-mode, stream-json run of `prompt` with `agent`, as session
    `session_id` when given."""
    options = ["--output-format", "stream-json", "--verbose"]
    if session_id:
        options += ["--session-id", session_id]
    if agent:
        options += ["--agent", agent]
    if prompt.startswith("-"):
        # It would be read as an option: end the options before it.
        return [claude_bin, "-p", *options, "--", prompt]
    return [claude_bin, "-p", prompt, *options]


def run_task(
    prompt: str,
    *,
    tracker: Tracker | None,
    agent: str | None = None,
    project_id: str | None = None,
    task_id: str | None = None,
    timeout: float | None = None,
    settings: Settings | None = None,
    cwd: str | Path | None = None,
    kill_grace: float = DEFAULT_KILL_GRACE,
    registry: Engine | None = None,
    max_cost: float | None = None,
) -> TaskResult:
    """Run `prompt` with Claude Code and track it; return the task's outcome.

    The task runs as the Claude Code session `task_id` (a UUID; a new one when None), which
    is registered in `registry` (the usage database) first, with the agent and project, so that
    an import or a hook of the session records it under the same names.
    `timeout` (seconds) ends the run: its process group gets SIGTERM, then SIGKILL after
    `kill_grace` seconds. `max_cost` (USD) ends it the same way once what it streamed (the main
    loop's and the subagents' responses, priced from their tokens) costs more: the task fails
    with that reason and keeps what it spent. Never raises for a failed task or for tracking; a
    failed run comes back with status `failed` and an error. Raises, before running anything,
    InvalidTask for input Claude Code cannot run with (a task id that is not a UUID, NUL in a
    text, a max_cost that is no amount) and TaskIdTaken for a task id that has run before.
    """
    check_text("prompt", prompt, limit=None)
    check_text("agent", agent)
    check_text("project_id", project_id)
    if max_cost is not None and not (math.isfinite(max_cost) and max_cost > 0):
        raise InvalidTask("max_cost", f"must be a number of USD above 0, got {max_cost!r}")
    session_id = session_id_for(task_id)
    settings = settings or Settings()
    run = _Run(
        session_id=session_id,
        agent=agent or DEFAULT_AGENT,
        project_id=project_id,
        sink=EventSink(tracker),
    )
    if registry is not None:
        claim_session(registry, session_id, SessionNames(agent=run.agent, project_id=project_id))
    command = claude_command(settings.claude_bin, prompt, agent, session_id)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,  # its own process group, so a timeout ends its children too
        )
    except OSError as error:
        return run.end(error=f"could not start Claude Code ({settings.claude_bin}): {error}")
    run.started(process.pid)
    stderr = TailReader(process.stderr)
    watchdog = Watchdog(process, timeout, kill_grace)
    stopping: list[threading.Thread] = []
    if max_cost is not None:
        run.limit_cost(max_cost, lambda: stopping.append(_end_group(process, kill_grace)))
    try:
        run.read(process.stdout)
        exit_code = process.wait()
    except BaseException:
        kill_group(process.pid, signal.SIGKILL)
        process.wait()
        run.end(error="the run was interrupted", exit_code=process.returncode)
        raise
    finally:
        watchdog.cancel()
        for thread in stopping:
            thread.join()
        if process.stdout is not None:
            process.stdout.close()
    stderr.join(kill_grace)
    if run.over_cost is not None:
        return run.end(error=run.over_cost, exit_code=exit_code)
    if watchdog.fired:
        error = f"timed out after {timeout:g}s"
        return run.end(error=_with_stderr(error, stderr.text()), exit_code=exit_code)
    return run.end(error=run.failure(exit_code, stderr.text()), exit_code=exit_code)


class _Run:
    """One task's state while it streams, and the events and result made from it."""

    def __init__(
        self, *, session_id: str, agent: str, project_id: str | None, sink: EventSink
    ) -> None:
        self.task_id = session_id
        self.agent = agent
        self.project_id = project_id
        self.sink = sink
        self.event_id = main_event_id(session_id)
        self.started_at = datetime.now(UTC)
        self.clock = time.monotonic()
        self.start: UsageEvent | None = None
        self.follower = StreamFollower(
            namespace=session_namespace(session_id),
            task_event_id=self.event_id,
            task_id=session_id,
            project_id=project_id,
            source=SOURCE,
            emit=sink,
        )
        self.model: str | None = None
        self.session_id: str | None = None
        self.result: Mapping[str, Any] | None = None
        self.invalid: str | None = None  # what was wrong with the first line that was not JSON
        self.max_cost: float | None = None
        self.stop: Callable[[], None] | None = None
        self.over_cost: str | None = None  # why the run was stopped for its cost

    def started(self, pid: int) -> None:
        logger.info("task %s: Claude Code started (pid %d)", self.task_id, pid)
        self.start = build_event(**self._event_fields(), status=Status.RUNNING)
        self.sink(self.start)

    def limit_cost(self, max_cost: float, stop: Callable[[], None]) -> None:
        """Call `stop` once what the run streamed costs more than `max_cost` USD."""
        self.max_cost, self.stop = max_cost, stop

    def _check_cost(self) -> None:
        if self.max_cost is None or self.stop is None or self.over_cost is not None:
            return
        spent = self.follower.streamed_cost()
        if spent > self.max_cost:
            self.over_cost = (
                f"stopped at a cost of ${spent:.4f}, over its max_cost of ${self.max_cost:.4f}"
            )
            logger.warning("task %s: %s", self.task_id, self.over_cost)
            self.stop()

    def read(self, stdout: IO[bytes] | None) -> None:
        """Read the stream to its end; every line is taken at the wall-clock time it is read."""
        if stdout is None:
            return
        for number, line in enumerate(stdout, start=1):
            at = datetime.now(UTC)
            if not line.strip():
                continue
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                message = None
            if not isinstance(message, dict):
                if self.invalid is None:
                    snippet = line[:200].decode("utf-8", "replace").strip()
                    self.invalid = f"line {number} is not a JSON object: {snippet!r}"
                continue
            self._take(message)
            try:
                self.follower.feed(message, at)
            except Exception:  # a message of an unexpected shape must not end the run
                logger.exception("task %s: could not track stream line %d", self.task_id, number)
            self._check_cost()

    def _take(self, message: Mapping[str, Any]) -> None:
        kind, subtype = message.get("type"), message.get("subtype")
        if kind == "system" and subtype == "init":
            self.model = _string(message.get("model")) or self.model
            self._session(message)
        elif kind == "result":
            self.result = message
            self._session(message)

    def _session(self, message: Mapping[str, Any]) -> None:
        reported = _string(message.get("session_id"))
        if reported is None or reported == self.session_id:
            return
        if self.session_id is None and reported != self.task_id:
            logger.warning(
                "task %s: Claude Code ran session %s instead (it did not take --session-id): "
                "an import of that session's transcripts will record it as another task",
                self.task_id,
                reported,
            )
        self.session_id = reported

    def failure(self, exit_code: int, stderr: str) -> str | None:
        """Why the run failed, or None when it succeeded."""
        result = self.result
        if result is None:
            if self.invalid is not None:
                return _with_stderr(f"output is not valid stream-json: {self.invalid}", stderr)
            if exit_code != 0:
                return _with_stderr(f"Claude Code {exit_text(exit_code)} without a result", stderr)
            return _with_stderr("the stream ended without a result message", stderr)
        subtype = _string(result.get("subtype")) or "unknown"
        if subtype != SUCCESS or result.get("is_error"):
            errors = result.get("errors")
            reasons = [e for e in errors if isinstance(e, str)] if isinstance(errors, list) else []
            detail = "; ".join(reasons) or _string(result.get("result")) or "no detail given"
            return f"Claude Code reported {subtype}: {detail}"
        if exit_code != 0:
            return _with_stderr(f"Claude Code {exit_text(exit_code)}", stderr)
        if self.invalid is not None:
            return f"output is not valid stream-json: {self.invalid}"
        return None

    def end(self, *, error: str | None, exit_code: int | None = None) -> TaskResult:
        """Finish the task's invocation and every child still open; the task's result."""
        ended_at = max(datetime.now(UTC), self.started_at)
        duration = time.monotonic() - self.clock
        status = Status.FAILED if error else Status.COMPLETED
        error = truncate_error(error) if error else None
        try:
            self.follower.close(ended_at)
            changes = self._spend_fields()
        except Exception:
            logger.exception("task %s: could not account for its spend", self.task_id)
            changes = {}
        changes.update(finished_at=ended_at, model=self.model, error_message=error)
        if self.start is None:
            fields = {**self._event_fields(), **changes, "status": status}
            self.sink(build_event(**fields))
        else:
            self.sink(finish_event(self.start, status, **changes))
        result = self.result or {}
        total = result.get("total_cost_usd")
        if not _is_amount(total) and self.over_cost is not None:
            total = self.follower.streamed_cost()  # stopped before Claude Code reported one
        turns = result.get("num_turns")
        return TaskResult(
            task_id=self.task_id,
            status=status,
            result=_string(result.get("result")),
            error=error,
            duration_seconds=duration,
            cost_usd=float(total) if _is_amount(total) else None,
            session_id=self.session_id,
            exit_code=exit_code,
            agent=self.agent,
            model=self.model,
            num_turns=turns if isinstance(turns, int) else None,
            event_id=self.event_id,
        )

    def _event_fields(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "kind": Kind.AGENT,
            "name": self.agent,
            "task_id": self.task_id,
            "project_id": self.project_id,
            "timestamp": self.started_at,
            "source": SOURCE,
        }

    def _spend_fields(self) -> dict[str, Any]:
        """The task row's own tokens and cost: the main loop's, exclusive of its subagents."""
        result = self.result
        if result is not None and isinstance(result.get("usage"), Mapping):
            usage = result["usage"]
            fields: dict[str, Any] = {
                "input_tokens": _tokens(usage.get("input_tokens")),
                "output_tokens": _tokens(usage.get("output_tokens")),
                "cache_read_tokens": _tokens(usage.get("cache_read_input_tokens")),
                "cache_creation_tokens": _tokens(usage.get("cache_creation_input_tokens")),
            }
            total = result.get("total_cost_usd")
            if _is_amount(total):
                # The reported total covers the subagents, whose rows hold their own cost.
                fields["cost_usd"] = max(0.0, float(total) - self.follower.subagents_cost)
            return fields
        # No result to go by: what the main loop was seen to spend, priced here.
        spend = self.follower.main_loop_spend()
        if spend is None:
            return {}
        fields = spend.event_fields()
        del fields["model"]
        return fields


def _end_group(process: subprocess.Popen[bytes], grace: float) -> threading.Thread:
    """End the run's process group as a timeout does: SIGTERM now, SIGKILL for what is left
    once the leader exits or `grace` seconds pass (on the thread returned)."""
    kill_group(process.pid, signal.SIGTERM)

    def finish() -> None:
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_group(process.pid, signal.SIGKILL)

    thread = threading.Thread(target=finish, name="end-over-cost-run", daemon=True)
    thread.start()
    return thread


def _with_stderr(message: str, stderr: str) -> str:
    if not stderr:
        return message
    tail = stderr[-STDERR_IN_ERROR:]
    return f"{message}; stderr: {tail}"


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_amount(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _tokens(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
