"""What the importer reads from a transcript entry's fields: tracked tool calls (Agent/Task and
Skill, every documented input style), task notifications, typed commands, message text."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from claude_api.events import Kind
from claude_api.importer.records import Notification, ToolUse
from claude_api.names import AGENT_TOOLS, DEFAULT_SUBAGENT, SKILL_TOOL, agent_name, skill_name

__all__ = ["AGENT_TOOLS", "DEFAULT_SUBAGENT", "SKILL_TOOL", "agent_name", "skill_name"]

# Claude Code's own slash commands: typed, they run no skill. Any other `/name` is a skill or a
# custom command (which Claude Code now treats as skills).
BUILTIN_COMMANDS = frozenset({
    "add-dir", "agents", "bashes", "bug", "btw", "clear", "color", "compact", "config",
    "context", "continue", "cost", "doctor", "exit", "export", "extra-usage", "feedback", "fork",
    "help", "hooks", "ide", "init", "install-github-app", "keybindings", "login", "logout",
    "mcp", "memory", "migrate-installer", "model", "output-style", "permissions", "plan",
    "plugin", "plugins", "pr-comments", "privacy-settings", "quit", "release-notes",
    "remote-env", "rename", "resume", "review", "rewind", "sandbox", "security-review", "stats",
    "status", "statusline", "tasks", "terminal-setup", "theme", "todos", "upgrade", "usage",
    "vim",
})  # fmt: skip

_TAG = {
    name: re.compile(rf"<{name}>(.*?)</{name}>", re.S)
    for name in ("tool-use-id", "task-id", "status", "summary", "command-name")
}


def tool_use(block: dict[str, Any], at: str) -> ToolUse | None:
    """The tracked call a `tool_use` content block makes (Agent/Task or Skill), if any."""
    tool_use_id = block.get("id")
    tool = block.get("name")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        return None
    tool_input = block.get("input")
    tool_input = tool_input if isinstance(tool_input, dict) else {}
    if tool in AGENT_TOOLS:
        name = agent_name(tool_input)
        background = tool_input.get("run_in_background") is True
        prompt = tool_input.get("prompt")
        key = prompt_key(prompt) if isinstance(prompt, str) else None
        return ToolUse(tool_use_id, Kind.AGENT, name, at, background, key)
    if tool == SKILL_TOOL:
        name = skill_name(tool_input)
        if name:
            return ToolUse(tool_use_id, Kind.SKILL, name, at)
    return None


def prompt_key(text: str) -> str | None:
    """A short digest of a prompt (stripped), to join a subagent transcript to its call by
    the prompt it was given without keeping the prompt."""
    text = text.strip()
    if not text:
        return None
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=12).hexdigest()


def notification(text: str, at: str) -> Notification:
    """A `<task-notification>` message's tool use id, task id, status and summary."""
    return Notification(
        tool_use_id=tag(text, "tool-use-id"),
        task_id=tag(text, "task-id"),
        status=(tag(text, "status") or "completed").strip(),
        summary=tag(text, "summary"),
        at=at,
    )


def tag(text: str, name: str) -> str | None:
    """The text inside `<name>…</name>`, stripped."""
    found = _TAG[name].search(text)
    return found.group(1).strip() if found else None


def origin(entry: Mapping[str, Any]) -> Any:
    """The entry's `origin.kind` (e.g. `task-notification`)."""
    origin = entry.get("origin")
    return origin.get("kind") if isinstance(origin, dict) else None


def text_of(content: Any) -> str:
    """The text of message or tool-result content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content.strip()
    if not isinstance(content, list):
        return ""
    texts = [block.get("text") for block in content if isinstance(block, dict)]
    return "\n".join(text for text in texts if isinstance(text, str)).strip()


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
