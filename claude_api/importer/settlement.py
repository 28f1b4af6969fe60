"""Settle a session's invocations into usage events (the finishing half of the assembly).

An invocation is written when it is settled: its status known, its skill window closed and the
invocation it ran in known. Finishing claims the spend of its transcript; what a transcript
gains after its invocation finished becomes a continuation (a new invocation of the same agent:
a resumed session is a second run of `main`). When the session is over (`closing`), everything
still open is finished as failed, and subagent transcripts no call spawned (workflow steps)
become invocations of their own. A pass that does not close writes what is still open as
`running`, with what it spent so far (`_report_open`).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from claude_api.events import (
    MAX_NAME_LENGTH,
    Kind,
    Status,
    UsageEvent,
    truncate_error,
)
from claude_api.importer.fields import agent_name
from claude_api.importer.state import Invocation, SessionState, ThreadState
from claude_api.importer.tally import Tally
from claude_api.models.task_sessions import SessionNames
from claude_api.names import project_of

logger = logging.getLogger(__name__)

IMPORT_NAMESPACE = uuid.UUID("6b1f3c2e-8a4d-5e7f-9c1b-2d3e4f5a6b7c")
MAIN_AGENT = "main"
MAIN_THREAD = ""
BACKGROUND_STATUSES = frozenset({"async_launched", "remote_launched"})
UNFINISHED_AGENT = "the session ended before the subagent finished"
UNNOTIFIED_AGENT = "the session ended without the background subagent's completion notice"
UNFINISHED_SKILL = "the session ended before the skill finished"
USER_TYPED = "user-typed"  # source suffix of a skill the user typed as /name


def session_namespace(session_id: str) -> uuid.UUID:
    return uuid.uuid5(IMPORT_NAMESPACE, session_id)


def main_key(segment: int) -> str:
    return "main" if segment == 0 else f"main#{segment}"


class Settlement:
    """The finishing half of `SessionAssembly`: invocations settled by a pass into events."""

    def __init__(
        self,
        *,
        session_id: str,
        state: SessionState,
        threads: dict[str, ThreadState],
        source: str,
        stats: Counter[str],
        names: SessionNames | None = None,
    ) -> None:
        self.session_id = session_id
        self.state = state
        self.threads = threads
        self.source = source
        self.stats = stats
        self.names = names  # the executor's names of a session it ran: they win
        self.namespace = session_namespace(session_id)
        self.events: list[UsageEvent] = []

    def event_id(self, key: str) -> uuid.UUID:
        return uuid.uuid5(self.namespace, key)

    @property
    def main_agent(self) -> str:
        """The agent the main thread is an invocation of."""
        if self.names is not None:
            return self.names.agent
        return self.state.agent or MAIN_AGENT

    @property
    def project_id(self) -> str | None:
        """The project the session's rows are recorded under."""
        if self.names is not None:
            return self.names.project_id
        return _project(self.state.cwd)

    @property
    def main_id(self) -> str:
        return self.event_id(main_key(self.state.segment)).hex

    def _close_windows(self, thread_id: str) -> None:
        for invocation in self.state.invocations.values():
            if invocation.window_open and invocation.thread == thread_id:
                invocation.window_open = False

    def _link_threads(self, *, closing: bool) -> None:
        invocations = self.state.invocations
        for agent_id, thread in self.threads.items():
            if agent_id == MAIN_THREAD or thread.owner is not None:
                continue
            tool_use_id = thread.meta.get("toolUseId")
            invocation = invocations.get(tool_use_id) if isinstance(tool_use_id, str) else None
            if invocation is not None:
                thread.owner = invocation.key
                invocation.agent_id = invocation.agent_id or agent_id
        for invocation in invocations.values():
            thread = self.threads.get(invocation.agent_id or "")
            if invocation.agent_id and thread is not None and thread.owner is None:
                thread.owner = invocation.key
        self._link_by_prompt(closing=closing)

    def _link_by_prompt(self, *, closing: bool) -> None:
        """The older flat layout has no sidecar, and a failed call's result (an error string)
        names no agentId: such a transcript is its call's when its first prompt is the call's
        prompt, pairing in time order when calls share a prompt. Only calls that can learn no
        better link any more are joined: settled ones, or all when the session is over."""
        threads = sorted(
            (
                thread
                for agent_id, thread in self.threads.items()
                if agent_id != MAIN_THREAD and thread.owner is None and not thread.meta
                and thread.prompt is not None
            ),
            key=lambda thread: thread.first_at or "",
        )  # fmt: skip
        if not threads:
            return
        calls = sorted(
            (
                invocation
                for invocation in self.state.invocations.values()
                if invocation.kind is Kind.AGENT and invocation.agent_id is None
                and invocation.prompt is not None and (closing or invocation.status is not None)
            ),
            key=lambda invocation: invocation.at,
        )  # fmt: skip
        for call in calls:
            thread = next(
                (
                    thread
                    for thread in threads
                    if thread.owner is None and thread.prompt == call.prompt
                    and (thread.first_at or call.at) >= call.at
                ),
                None,
            )  # fmt: skip
            if thread is not None:
                thread.owner = call.key
                call.agent_id = thread.agent_id

    def _close_open_invocations(self) -> None:
        for invocation in self.state.invocations.values():
            invocation.window_open = False
            if invocation.status is not None:
                continue
            thread = self.threads.get(invocation.agent_id) if invocation.agent_id else None
            end = (thread.last_at if thread is not None else None) or invocation.at
            stopped = self.state.hook_stops.get(invocation.agent_id or "")
            if invocation.background and stopped:
                invocation.status, invocation.end_at = Status.COMPLETED.value, stopped
                continue
            invocation.status = Status.FAILED.value
            invocation.end_at = invocation.end_at or end
            if invocation.kind is Kind.SKILL:
                invocation.error = UNFINISHED_SKILL
            else:
                invocation.error = UNNOTIFIED_AGENT if invocation.background else UNFINISHED_AGENT

    def _resolve_parent(self, invocation: Invocation, *, closing: bool) -> None:
        if invocation.parent is None:
            invocation.parent = self._thread_invocation(invocation.thread, closing=closing)

    def _thread_invocation(self, thread_id: str, *, closing: bool) -> str | None:
        """Event id (hex) of the invocation a transcript's calls run in, when known."""
        if thread_id == MAIN_THREAD:
            return self.main_id
        thread = self.threads.get(thread_id)
        if thread is not None and thread.owner is not None:
            return self.event_id(thread.owner).hex
        return self.event_id(f"agent:{thread_id}").hex if closing else None

    def _ready(self, invocation: Invocation) -> bool:
        return (
            invocation.status is not None
            and not invocation.window_open
            and invocation.parent is not None
        )

    def _finish_invocation(self, invocation: Invocation) -> None:
        thread = self.threads.get(invocation.agent_id) if invocation.agent_id else None
        if (
            thread is not None
            and thread.owner not in (None, invocation.key)
            and thread.owner in self.state.invocations
        ):
            thread = None  # the transcript belongs to another call still running
        tally = invocation.window if invocation.window else None
        if thread is not None:
            # A resumed subagent's transcript goes on in the same file: each call that ran it
            # takes what it spent since the call before.
            tally = tally or Tally()
            tally.merge(self._claim(thread, invocation.key, invocation.name, invocation))
            if thread.agent_id is not None:
                self._close_windows(thread.agent_id)
        start = invocation.at
        duration = None
        if invocation.duration_ms is not None:
            duration = invocation.duration_ms / 1000
        elif invocation.kind is Kind.AGENT and invocation.background and thread is not None:
            duration = _seconds(thread.first_at, thread.last_at)
        if duration is None:
            end = max(
                (at for at in (invocation.end_at, invocation.window_last) if at), default=start
            )
            duration = _seconds(start, end)
        source = f"{self.source}:{USER_TYPED}" if invocation.typed else self.source
        self._emit(
            key=invocation.key,
            kind=invocation.kind,
            name=invocation.name,
            parent=invocation.parent,
            at=start,
            status=Status(invocation.status or Status.FAILED.value),
            duration=duration,
            tally=tally,
            error=invocation.error,
            source=source,
        )
        del self.state.invocations[invocation.key]
        self.state.finished.add(invocation.key)

    def _claim(self, thread: ThreadState, key: str, name: str, invocation: Invocation) -> Tally:
        claimed = thread.unclaimed
        thread.unclaimed = Tally()
        thread.owner = key
        thread.owner_name = name
        thread.owner_kind = invocation.kind.value
        thread.owner_parent = invocation.parent
        thread.claims += 1
        return claimed

    def _finish_orphans_and_continuations(self) -> None:
        for agent_id, thread in self.threads.items():
            if agent_id == MAIN_THREAD:
                continue
            if thread.owner is None:
                key = f"agent:{agent_id}"
                name = _string(thread.meta.get("agentType")) or thread.hint or agent_name({})
                parent = _string(thread.meta.get("parentAgentId"))
                parent_id = self._thread_invocation(parent, closing=True) if parent else None
                orphan = Invocation(
                    key=key,
                    kind=Kind.AGENT,
                    name=name[:MAX_NAME_LENGTH],
                    thread=parent or MAIN_THREAD,
                    at=thread.first_at or thread.unclaimed.first_at or "",
                    parent=parent_id or self.main_id,
                    status=Status.COMPLETED.value,
                    end_at=thread.last_at,
                    agent_id=agent_id,
                )
                self.state.invocations[key] = orphan
                self._finish_invocation(orphan)
            elif thread.unclaimed and thread.owner not in self.state.invocations:
                self._continue(thread)

    def _continue(self, thread: ThreadState) -> None:
        tally = thread.unclaimed
        thread.unclaimed = Tally()
        key = f"{thread.owner}#{thread.claims}"
        thread.claims += 1
        self._emit(
            key=key,
            kind=Kind(thread.owner_kind or Kind.AGENT.value),
            name=thread.owner_name or agent_name({}),
            parent=thread.owner_parent,
            at=tally.first_at or thread.last_at or "",
            status=Status.COMPLETED,
            duration=_seconds(tally.first_at, tally.last_at),
            tally=tally,
            error=None,
            source=self.source,
        )

    def _finish_main(self) -> None:
        state = self.state
        main = self.threads.get(MAIN_THREAD)
        if main is None or not state.segment_open:
            return
        tally = main.unclaimed
        main.unclaimed = Tally()
        start = state.segment_first_at or tally.first_at or main.first_at or ""
        self._emit(
            key=main_key(state.segment),
            kind=Kind.AGENT,
            name=self.main_agent,
            parent=None,
            at=start,
            status=Status.COMPLETED,
            duration=_seconds(start, max(main.last_at or start, tally.last_at or start)),
            tally=tally,
            error=None,
            source=self.source,
        )
        state.segment_open = False
        state.segment_started = True

    def _report_open(self) -> None:
        """Write what the open invocations spent so far as `running` events of their ids: at
        first, then whenever it grew. Each reports only spend that its own finish will claim
        (its skill window, the transcript it is the owner of), so no response is ever shown on
        two rows; what no open invocation surely owns yet (a transcript not linked to its call,
        a resumed subagent's new part) waits for the finish that settles it."""
        state = self.state
        main = self.threads.get(MAIN_THREAD)
        if state.segment_open and main is not None:
            spent = _copy(main.unclaimed)
            if (not state.segment_started or state.segment_shown != _shown(spent)) and self._emit(
                key=main_key(state.segment),
                kind=Kind.AGENT,
                name=self.main_agent,
                parent=None,
                at=state.segment_first_at or main.first_at or "",
                status=Status.RUNNING,
                duration=None,
                tally=spent,
                error=None,
                source=self.source,
            ):
                state.segment_started = True
                state.segment_shown = _shown(spent)
        for invocation in state.invocations.values():
            spent = self._spent_so_far(invocation)
            if invocation.started and invocation.shown == _shown(spent):
                continue
            source = f"{self.source}:{USER_TYPED}" if invocation.typed else self.source
            if self._emit(
                key=invocation.key,
                kind=invocation.kind,
                name=invocation.name,
                parent=invocation.parent,
                at=invocation.at,
                status=Status.RUNNING,
                duration=None,
                tally=spent,
                error=None,
                source=source,
            ):
                invocation.started = True
                invocation.shown = _shown(spent)

    def _spent_so_far(self, invocation: Invocation) -> Tally | None:
        """What finishing `invocation` now would claim, without claiming it; None when that is
        not known yet."""
        spent = _copy(invocation.window) if invocation.window else None
        thread = self.threads.get(invocation.agent_id) if invocation.agent_id else None
        if thread is not None and thread.owner == invocation.key:
            spent = spent or Tally()
            spent.merge(thread.unclaimed)
        return spent

    def _emit(
        self,
        *,
        key: str,
        kind: Kind,
        name: str,
        parent: str | None,
        at: str,
        status: Status,
        duration: float | None,
        tally: Tally | None,
        error: str | None,
        source: str,
    ) -> bool:
        timestamp = _datetime(at)
        if timestamp is None:
            self.stats["invocations without a time"] += 1
            return False
        fields: dict[str, Any] = {
            "event_id": self.event_id(key),
            "kind": kind,
            "name": name,
            "task_id": self.session_id[:MAX_NAME_LENGTH],
            "parent_id": uuid.UUID(hex=parent) if parent else None,
            "project_id": self.project_id,
            "timestamp": timestamp,
            "status": status,
            "source": source,
        }
        if status is not Status.RUNNING:
            fields["duration_seconds"] = max(duration or 0.0, 0.0)
            if error:
                fields["error_message"] = truncate_error(error)
        if tally is not None:  # a running invocation's: what it spent so far
            fields.update(tally.event_fields())
        try:
            event = UsageEvent(**fields)
        except ValueError as problem:
            self.stats["invalid invocations"] += 1
            logger.warning(
                "invocation %s of session %s not imported: %s", key, self.session_id, problem
            )
            return False
        self.events.append(event)
        return True


def _datetime(at: str | None) -> datetime | None:
    if not at:
        return None
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def _seconds(start: str | None, end: str | None) -> float | None:
    first, last = _datetime(start), _datetime(end)
    if first is None or last is None:
        return None
    return max((last - first).total_seconds(), 0.0)


def shift(at: str, seconds: float) -> str | None:
    value = _datetime(at)
    return (value + timedelta(seconds=seconds)).isoformat() if value is not None else None


def _project(cwd: str | None) -> str | None:
    return project_of(cwd)  # the PreToolUse budget check names the project the same way


def _copy(tally: Tally) -> Tally:
    copy = Tally()
    copy.merge(tally)
    return copy


def _shown(tally: Tally | None) -> list[int] | None:
    """What a running event of `tally` showed: its responses and token counts."""
    if tally is None:
        return None
    return [
        tally.responses, tally.input_tokens, tally.output_tokens, tally.cache_read_tokens,
        tally.cache_creation_tokens,
    ]  # fmt: skip


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
