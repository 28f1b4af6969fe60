"""Turn a session's records into usage events: who spent which tokens, which call ran in which.

- The session is a task (task id = session id, project = its working directory). Its main
  thread is an invocation of the agent `main` (or the agent the session ran as) holding the
  main transcript's own spend.
- An Agent/Task call is an invocation of its `subagent_type`, holding its subagent transcript's
  spend (linked by the sidecar's `toolUseId` or the result's `agentId`); a call inside a subagent
  runs in that subagent's invocation. Status and duration come from the result; a background
  run (`async_launched`) finishes with its `<task-notification>`.
- A Skill call, or a typed `/skill`, is a skill invocation inside the agent that made it. It
  lasts until its turn ends; its tokens are the responses Claude Code attributed to it
  (`attributionSkill`, newer CLIs) plus its forked transcript, if it ran forked; without those
  they stay with the agent. Rows are exclusive: every response counts on exactly one row.
- Spend is claimed when an invocation finishes; until then its running row shows what it spent
  so far (only what its own finish will claim). A transcript that grows after its invocation
  finished (a resumed session or subagent) becomes a continuation: a new invocation of the same
  agent, so that the sum over rows always equals the transcripts' total.

Event ids are uuid5 of the session and the call's tool use id (or `main`, `agent:<id>`,
`command:<entry uuid>`), so importing again, or from a hook, writes the same rows.
"""

from __future__ import annotations

from typing import Any

from claude_api.events import MAX_NAME_LENGTH, Kind, Status, UsageEvent
from claude_api.importer.fields import agent_name, skill_name
from claude_api.importer.lines import Chunk
from claude_api.importer.records import (
    Command,
    Notification,
    Response,
    ToolResult,
    ToolUse,
    TurnEnd,
)
from claude_api.importer.settlement import (
    BACKGROUND_STATUSES,
    MAIN_THREAD,
    Settlement,
    shift,
)
from claude_api.importer.state import RECENT_RESPONSES, Invocation, ThreadState
from claude_api.importer.tally import Tally


class SessionAssembly(Settlement):
    """One import pass over a session: feed each transcript's new records, then `finish`."""

    # ---- reading ---------------------------------------------------------------------------

    def feed(self, thread_id: str, chunk: Chunk) -> None:
        """Take the records one transcript gained, in file order."""
        state = self.state
        thread = self.threads.setdefault(thread_id, ThreadState(agent_id=thread_id or None))
        if chunk.lines:
            state.closed = False
            if thread_id == MAIN_THREAD and not state.segment_open:
                if state.segment_started:  # the segment before was written: a new one
                    state.segment += 1
                state.segment_open = True
                state.segment_started = False
                state.segment_shown = None
                state.segment_first_at = chunk.first_at
        if chunk.first_at and (thread.first_at is None or chunk.first_at < thread.first_at):
            thread.first_at = chunk.first_at
        if chunk.last_at and (thread.last_at is None or chunk.last_at > thread.last_at):
            thread.last_at = chunk.last_at
        thread.hint = thread.hint or chunk.agent_hint
        if thread_id != MAIN_THREAD:
            thread.prompt = thread.prompt or chunk.prompt
        if thread_id == MAIN_THREAD:
            state.cwd = state.cwd or chunk.cwd
            if not state.main_written:
                state.agent = state.agent or chunk.agent_hint
        windows = self._windows(thread_id)
        for record in chunk.records:
            if type(record) is Response:
                if windows:
                    target = self._window_for(windows, record)
                    (target if target is not None else thread.unclaimed).add(record)
                else:
                    thread.unclaimed.add(record)
            elif isinstance(record, ToolUse):
                self._tool_use(thread_id, record)
                windows = self._windows(thread_id)
            elif isinstance(record, ToolResult):
                invocation = state.invocations.get(record.tool_use_id)
                if invocation is not None and invocation.status is None:
                    self._result(invocation, record.is_error, record.text, record.detail, record.at)
            elif isinstance(record, Notification):
                self._notification(record)
            elif isinstance(record, Command):
                self._command(thread_id, record)
                windows = self._windows(thread_id)
            elif isinstance(record, TurnEnd):
                self._close_windows(thread_id)
                windows = []
        last: list[Response] = []
        for record in reversed(chunk.records):  # the last responses, for lines still to come
            if type(record) is Response and record.key is not None:
                last.append(record)
                if len(last) == RECENT_RESPONSES:
                    break
        for record in reversed(last):
            thread.remember(record.key, record.request)  # type: ignore[arg-type]

    def _windows(self, thread_id: str) -> list[Invocation]:
        """The skill invocations of a transcript whose turn is still going, latest last."""
        return [
            invocation
            for invocation in self.state.invocations.values()
            if invocation.window_open and invocation.thread == thread_id
        ]

    @staticmethod
    def _window_for(windows: list[Invocation], response: Response) -> Tally | None:
        """The tally of the skill a response is attributed to, if its window is open."""
        found = None
        for invocation in windows:
            invocation.window_last = response.at
            if response.skill and _same_skill(response.skill, invocation.name):
                found = invocation.window  # the latest started wins
        return found

    def windows_open(self, thread_id: str) -> bool:
        return any(
            invocation.window_open and invocation.thread == thread_id
            for invocation in self.state.invocations.values()
        )

    def watched(self) -> set[str]:
        """Tool use ids whose results are still awaited."""
        return {
            key
            for key, invocation in self.state.invocations.items()
            if invocation.status is None and not invocation.typed and not invocation.background
        }

    def _tool_use(self, thread_id: str, tool_use: ToolUse) -> None:
        key = tool_use.tool_use_id
        if key in self.state.invocations or key in self.state.finished:
            return
        if tool_use.kind is Kind.SKILL:
            self._close_windows(thread_id)
        self.state.invocations[key] = Invocation(
            key=key,
            kind=tool_use.kind,
            name=tool_use.name[:MAX_NAME_LENGTH],
            thread=thread_id,
            at=tool_use.at,
            parent=self.main_id if thread_id == MAIN_THREAD else None,
            background=tool_use.background,
            prompt=tool_use.prompt,
            window=Tally() if tool_use.kind is Kind.SKILL else None,
            window_open=tool_use.kind is Kind.SKILL,
        )

    def _command(self, thread_id: str, command: Command) -> None:
        key = f"command:{command.uuid}"
        if key in self.state.invocations or key in self.state.finished:
            return
        self._close_windows(thread_id)
        self.state.invocations[key] = Invocation(
            key=key,
            kind=Kind.SKILL,
            name=command.name[:MAX_NAME_LENGTH],
            thread=thread_id,
            at=command.at,
            parent=self.main_id if thread_id == MAIN_THREAD else None,
            typed=True,
            status=Status.COMPLETED.value,
            end_at=command.at,
            window=Tally(),
            window_open=True,
        )

    def _result(
        self, invocation: Invocation, is_error: bool, text: str, detail: Any, at: str
    ) -> None:
        invocation.end_at = at
        error_text = detail if isinstance(detail, str) and detail.startswith("Error") else None
        detail = detail if isinstance(detail, dict) else {}
        linked = detail.get("agentId")
        if isinstance(linked, str) and linked:
            invocation.agent_id = linked
        if is_error or error_text:
            invocation.status = Status.FAILED.value
            invocation.error = text or error_text or f"the {invocation.kind.value} call failed"
        elif invocation.kind is Kind.AGENT and detail.get("status") in BACKGROUND_STATUSES:
            invocation.background = True
        elif invocation.kind is Kind.SKILL and detail.get("success") is False:
            invocation.status = Status.FAILED.value
            invocation.error = text or "the skill did not run"
        else:
            invocation.status = Status.COMPLETED.value
        elapsed = detail.get("totalDurationMs")
        if isinstance(elapsed, int | float) and not isinstance(elapsed, bool) and elapsed >= 0:
            invocation.duration_ms = float(elapsed)

    def _notification(self, notification: Notification) -> None:
        invocation = None
        if notification.tool_use_id:
            invocation = self.state.invocations.get(notification.tool_use_id)
        if invocation is None and notification.task_id:
            invocation = next(
                (
                    candidate
                    for candidate in self.state.invocations.values()
                    if candidate.agent_id == notification.task_id
                ),
                None,
            )
        if invocation is None or invocation.kind is not Kind.AGENT or invocation.status:
            return
        invocation.background = True
        invocation.end_at = notification.at
        if notification.status == "completed":
            invocation.status = Status.COMPLETED.value
        else:
            invocation.status = Status.FAILED.value
            invocation.error = notification.summary or f"subagent {notification.status}"

    # ---- hooks -----------------------------------------------------------------------------

    def apply_hook_results(self, *, closing: bool) -> None:
        """Results a hook reported for calls whose result the transcript does not show yet."""
        state = self.state
        for key in list(state.hook_results):
            reported = state.hook_results[key]
            invocation = state.invocations.get(key)
            if invocation is None and key in state.finished:
                del state.hook_results[key]
                continue
            if invocation is None:
                if not closing:
                    continue  # the transcript has not caught up with the call yet
                invocation = self._invocation_from_hook(key, reported)
                if invocation is None:
                    del state.hook_results[key]
                    continue
            if invocation.status is None and not invocation.background:
                self._result(
                    invocation,
                    bool(reported.get("failed")),
                    str(reported.get("error") or ""),
                    reported.get("response"),
                    reported["at"],
                )
                if invocation.duration_ms is None and reported.get("duration_ms") is not None:
                    invocation.duration_ms = float(reported["duration_ms"])
            del state.hook_results[key]

    def _invocation_from_hook(self, key: str, reported: dict[str, Any]) -> Invocation | None:
        tool_input = reported.get("input") if isinstance(reported.get("input"), dict) else {}
        if reported.get("tool") == "Skill":
            kind, name = Kind.SKILL, skill_name(tool_input)
        else:
            kind, name = Kind.AGENT, agent_name(tool_input)
        if not name:
            return None
        at = reported["at"]
        duration = reported.get("duration_ms")
        if isinstance(duration, int | float):
            at = shift(at, -float(duration) / 1000) or at
        thread = reported.get("thread") or MAIN_THREAD
        invocation = Invocation(
            key=key,
            kind=kind,
            name=name[:MAX_NAME_LENGTH],
            thread=thread,
            at=at,
            parent=self.main_id if thread == MAIN_THREAD else None,
        )
        self.state.invocations[key] = invocation
        return invocation

    def finish(self, *, closing: bool) -> list[UsageEvent]:
        """Write what this pass settled: finished invocations, starts of the open ones and,
        when `closing` (the session is over), everything that is left."""
        state = self.state
        self.apply_hook_results(closing=closing)
        self._link_threads(closing=closing)
        if closing:
            self._close_open_invocations()
        for invocation in list(state.invocations.values()):
            self._resolve_parent(invocation, closing=closing)
            if self._ready(invocation):
                self._finish_invocation(invocation)
        if closing:
            self._finish_orphans_and_continuations()
            self._finish_main()
            for invocation in list(state.invocations.values()):  # children of the orphans
                self._resolve_parent(invocation, closing=True)
                self._finish_invocation(invocation)
            state.closed = True
            state.finished.clear()
            state.seen.clear()
            state.hook_stops.clear()
        else:
            self._report_open()
        return self.events


def _same_skill(attributed: str, name: str) -> bool:
    """`attributionSkill` names the skill, possibly plugin-scoped (`plugin:skill`)."""
    if attributed == name:
        return True
    return attributed.rsplit(":", 1)[-1] == name.rsplit(":", 1)[-1]
