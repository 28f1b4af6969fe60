"""What the importer keeps of a transcript line: small records, in file order, for the assembly.

Timestamps stay the ISO strings Claude Code writes (`2026-05-01T10:00:03.000Z`): they compare
as text, and only the few that end up on an event are parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claude_api.events import Kind
from claude_api.spend import Request


@dataclass(slots=True)
class Response:
    """One API response (however many lines carried it); with `replaces`, a larger count of a
    response an earlier import counted: only the difference is added, no new response."""

    key: str | None  # message.id, else requestId; None: cannot be deduplicated
    at: str
    request: Request
    reported_cost: float | None  # legacy `costUSD`
    skill: str | None  # `attributionSkill` (newer CLIs)
    replaces: Request | None = None


@dataclass(slots=True)
class ToolUse:
    """An Agent/Task or Skill tool call."""

    tool_use_id: str
    kind: Kind
    name: str
    at: str
    background: bool = False
    prompt: str | None = None  # `prompt_key` of an Agent call's `input.prompt`


@dataclass(slots=True)
class ToolResult:
    """The result of a tracked tool call: the `tool_result` block and the entry's
    `toolUseResult` (a dict, or the error string failed calls carry)."""

    tool_use_id: str
    at: str
    is_error: bool
    text: str
    detail: Any


@dataclass(slots=True)
class Notification:
    """A `<task-notification>`: a background subagent finished."""

    tool_use_id: str | None
    task_id: str | None
    status: str
    summary: str | None
    at: str


@dataclass(slots=True)
class Command:
    """A user-typed `/name` that is not one of Claude Code's built-in commands: a skill run."""

    name: str
    at: str
    uuid: str


@dataclass(slots=True)
class TurnEnd:
    """A turn of the conversation ended: a new human prompt, or `system/turn_duration`."""

    at: str


Record = Response | ToolUse | ToolResult | Notification | Command | TurnEnd
