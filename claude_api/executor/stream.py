"""Track the subagents and skills of a `claude -p` stream-json run, message by message.

Each Agent/Task or Skill tool call starts an invocation when it is seen and finishes it with its
tool result (or, for a background subagent, its task notification). A subagent's tokens and cost
are those of the API responses streamed on its behalf (`parent_tool_use_id`). Calls are named
as the transcript import names them, and their event ids derive from the session and the tool
use id as the import's do, so both record one row per call.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from claude_api.events import MAX_NAME_LENGTH, Kind, Status, UsageEvent, truncate_error
from claude_api.executor.emit import build_event, finish_event
from claude_api.importer.fields import AGENT_TOOLS, SKILL_TOOL, agent_name, skill_name
from claude_api.spend import Request, Responses, Spend

logger = logging.getLogger(__name__)

BACKGROUND_STATUSES = frozenset({"async_launched", "remote_launched"})
UNFINISHED = {
    Kind.AGENT: "task ended before the subagent finished",
    Kind.SKILL: "task ended before the skill finished",
}

Emit = Callable[[UsageEvent | None], None]


@dataclass
class _Invocation:
    """A subagent or skill call seen in the stream, from its tool use to its result."""

    tool_use_id: str
    kind: Kind
    start: UsageEvent | None
    started_at: datetime
    background: bool = False
    finished: bool = False
    notification: tuple[Status, str | None, datetime] | None = None


class StreamFollower:
    """Emits a start and a finish for every subagent and skill call of one task's stream.

    Children's event ids are uuid5 of `namespace` (the session's) and the tool use id, so
    replaying the same stream into the same task emits the same ids.
    """

    def __init__(
        self,
        *,
        namespace: uuid.UUID,
        task_event_id: uuid.UUID,
        task_id: str,
        project_id: str | None,
        source: str,
        emit: Emit,
    ) -> None:
        self.namespace = namespace
        self.task_event_id = task_event_id
        self.task_id = task_id
        self.project_id = project_id
        self.source = source
        self.subagents_cost = 0.0
        self._emit = emit
        self._responses: dict[str | None, Responses] = {}
        self._models: dict[str | None, str] = {}
        self._invocations: dict[str, _Invocation] = {}
        self._tool_uses_of_tasks: dict[str, str] = {}

    # ---- input -----------------------------------------------------------------------------

    def feed(self, message: Mapping[str, Any], at: datetime) -> None:
        """Take one stream-json message, read from the stream at wall-clock time `at`."""
        kind = message.get("type")
        if kind == "assistant":
            self._assistant(message, at)
        elif kind == "user":
            self._user(message, at)
        elif kind == "system":
            self._system(message, at)

    def close(self, at: datetime) -> None:
        """The stream ended: finish every invocation still open as failed."""
        for invocation in self._invocations.values():
            if not invocation.finished:
                self._finish(invocation, Status.FAILED, at, error=UNFINISHED[invocation.kind])

    def main_loop_spend(self) -> Spend | None:
        """What the task's own loop (messages without a parent tool use) spent, as streamed."""
        responses = self._responses.get(None)
        return responses.spend() if responses else None

    def streamed_cost(self) -> float:
        """What every API response streamed so far cost, the main loop's and the subagents'
        together, priced from their tokens (a model without a known price counts nothing)."""
        return sum(responses.priced_cost() for responses in self._responses.values())

    # ---- messages --------------------------------------------------------------------------

    def _assistant(self, message: Mapping[str, Any], at: datetime) -> None:
        owner = _string(message.get("parent_tool_use_id"))
        api_message = message.get("message")
        if not isinstance(api_message, Mapping):
            return
        self._responses.setdefault(owner, Responses()).add(api_message)
        model = _string(api_message.get("model"))
        if model:
            self._models.setdefault(owner, model)
        for block in _blocks(api_message.get("content")):
            tool_use_id = _string(block.get("id"))
            if block.get("type") != "tool_use" or tool_use_id is None:
                continue
            tool = block.get("name")
            tool_input = block.get("input")
            tool_input = tool_input if isinstance(tool_input, Mapping) else {}
            if tool in AGENT_TOOLS:
                self._start(tool_use_id, Kind.AGENT, agent_name(tool_input), owner, at)
            elif tool == SKILL_TOOL:
                name = skill_name(tool_input)
                if name:
                    self._start(tool_use_id, Kind.SKILL, name, owner, at)

    def _user(self, message: Mapping[str, Any], at: datetime) -> None:
        api_message = message.get("message")
        if not isinstance(api_message, Mapping):
            return
        results = [b for b in _blocks(api_message.get("content")) if b.get("type") == "tool_result"]
        # The structured output belongs to the tool result when the message carries only one.
        detail = message.get("tool_use_result") if len(results) == 1 else None
        for block in results:
            invocation = self._invocations.get(_string(block.get("tool_use_id")) or "")
            if invocation is not None and not invocation.finished:
                self._tool_result(invocation, block, detail, at)

    def _system(self, message: Mapping[str, Any], at: datetime) -> None:
        subtype = message.get("subtype")
        task = _string(message.get("task_id"))
        if subtype == "task_started":
            tool_use_id = _string(message.get("tool_use_id"))
            if task and tool_use_id:
                self._tool_uses_of_tasks[task] = tool_use_id
        elif subtype == "task_notification":
            tool_use_id = _string(message.get("tool_use_id")) or self._tool_uses_of_tasks.get(
                task or ""
            )
            invocation = self._invocations.get(tool_use_id or "")
            if invocation is None or invocation.finished or invocation.kind is not Kind.AGENT:
                return
            state = message.get("status")
            status = Status.COMPLETED if state == "completed" else Status.FAILED
            error = None
            if status is Status.FAILED:
                error = _string(message.get("summary")) or f"subagent {state or 'failed'}"
            if invocation.background:
                self._finish(invocation, status, at, error=error)
            else:  # its tool result has not said yet that it runs in the background
                invocation.notification = (status, error, at)

    # ---- invocations -----------------------------------------------------------------------

    def _start(
        self, tool_use_id: str, kind: Kind, name: str, owner: str | None, at: datetime
    ) -> None:
        if tool_use_id in self._invocations:
            return
        parent = self._invocations.get(owner or "")
        parent_id = self.task_event_id
        if parent is not None and parent.kind is Kind.AGENT:
            parent_id = uuid.uuid5(self.namespace, parent.tool_use_id)
        start = build_event(
            event_id=uuid.uuid5(self.namespace, tool_use_id),
            kind=kind,
            name=name[:MAX_NAME_LENGTH],
            task_id=self.task_id,
            parent_id=parent_id,
            project_id=self.project_id,
            timestamp=at,
            status=Status.RUNNING,
            model=self._models.get(owner) if kind is Kind.SKILL else None,
            source=self.source,
        )
        self._invocations[tool_use_id] = _Invocation(tool_use_id, kind, start, at)
        self._emit(start)

    def _tool_result(
        self, invocation: _Invocation, block: Mapping[str, Any], detail: Any, at: datetime
    ) -> None:
        detail = detail if isinstance(detail, Mapping) else None
        if block.get("is_error"):
            error = _text(block.get("content")) or "the tool call failed"
            self._finish(invocation, Status.FAILED, at, error=error, detail=detail)
        elif (
            invocation.kind is Kind.AGENT
            and detail is not None
            and detail.get("status") in BACKGROUND_STATUSES
        ):
            invocation.background = True
            if invocation.notification is not None:
                status, error, notified_at = invocation.notification
                self._finish(invocation, status, notified_at, error=error)
        elif (
            invocation.kind is Kind.SKILL and detail is not None and detail.get("success") is False
        ):
            error = _text(block.get("content")) or "the skill did not run"
            self._finish(invocation, Status.FAILED, at, error=error, detail=detail)
        else:
            self._finish(invocation, Status.COMPLETED, at, detail=detail)

    def _finish(
        self,
        invocation: _Invocation,
        status: Status,
        at: datetime,
        *,
        error: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        invocation.finished = True
        changes: dict[str, Any] = {
            "finished_at": max(at, invocation.started_at),  # the wall clock may step back
            "error_message": truncate_error(error) if error else None,
        }
        if invocation.kind is Kind.AGENT:
            streamed = invocation.tool_use_id in self._responses
            spend = self._spend(invocation, detail)
            if spend is not None:
                changes.update(spend.event_fields())
                self.subagents_cost += spend.cost_usd or 0.0
            elapsed = detail.get("totalDurationMs") if detail is not None else None
            if not streamed and isinstance(elapsed, int | float) and elapsed >= 0:
                changes["duration_seconds"] = elapsed / 1000
        elif detail is not None and _string(detail.get("model")):
            changes["model"] = detail["model"]
        self._emit(finish_event(invocation.start, status, **changes))

    def _spend(self, invocation: _Invocation, detail: Mapping[str, Any] | None) -> Spend | None:
        responses = self._responses.get(invocation.tool_use_id)
        if responses:
            return responses.spend()
        # No streamed messages: the tool's own report covers only the subagent's last request.
        usage = detail.get("usage") if detail is not None else None
        if not isinstance(usage, Mapping):
            return None
        models = detail.get("modelsUsed") if detail is not None else None
        model = _string(detail.get("resolvedModel")) if detail is not None else None
        if model is None and isinstance(models, list) and models:
            model = _string(models[0])
        return Spend.of([Request.from_usage(usage, model)])


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, Mapping)]


def _text(content: Any) -> str:
    """The text of a tool result's content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content.strip()
    texts = [block.get("text") for block in _blocks(content)]
    return "\n".join(text for text in texts if isinstance(text, str)).strip()
