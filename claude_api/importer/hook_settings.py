"""Install `claude-api hook` into a Claude Code settings.json, keeping everything already there.

The entries: SubagentStart, SubagentStop, PostToolUse and PostToolUseFailure (matcher
`Agent|Task|Skill`) run in the background (`async`), so the session never waits for them;
SessionEnd runs in the foreground with its own timeout, since Claude Code exits after it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TOOL_MATCHER = "Agent|Task|Skill"
HOOK_TIMEOUT_SECONDS = 30
HOOK_EVENTS: tuple[tuple[str, str | None, bool], ...] = (
    # (event, matcher, async)
    ("SubagentStart", None, True),
    ("SubagentStop", None, True),
    ("PostToolUse", TOOL_MATCHER, True),
    ("PostToolUseFailure", TOOL_MATCHER, True),
    ("SessionEnd", None, False),
)


class SettingsError(Exception):
    """The settings file exists but is not a JSON object with a `hooks` object."""


@dataclass(frozen=True)
class Installed:
    """Where the hooks went: the settings file, its backup (None when there was no file), and
    how many entries were added (0: all were there already)."""

    path: Path
    backup: Path | None
    added: int


def settings_path(*, project: Path | None = None, user: bool = False) -> Path:
    """`<project>/.claude/settings.json`, or the user's (`$CLAUDE_CONFIG_DIR` or `~/.claude`)."""
    if project is not None and not user:
        return project.expanduser().resolve() / ".claude" / "settings.json"
    configured = os.environ.get("CLAUDE_CONFIG_DIR", "").split(",")[0].strip()
    base = Path(configured).expanduser() if configured else Path.home() / ".claude"
    return base / "settings.json"


def merge_hooks(settings: dict[str, Any], command: str) -> int:
    """Add the hook entries running `command` to `settings` (in place); returns how many were
    added. An event that already runs `command` under the same matcher is left alone."""
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise SettingsError("`hooks` is not an object")
    added = 0
    for event, matcher, background in HOOK_EVENTS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise SettingsError(f"`hooks.{event}` is not a list")
        if any(_runs(group, matcher, command) for group in groups):
            continue
        handler: dict[str, Any] = {
            "type": "command",
            "command": command,
            "timeout": HOOK_TIMEOUT_SECONDS,
        }
        if background:
            handler["async"] = True
        group: dict[str, Any] = {"hooks": [handler]}
        if matcher is not None:
            group = {"matcher": matcher, **group}
        groups.append(group)
        added += 1
    return added


def install_hooks(path: Path, command: str, *, now: datetime | None = None) -> Installed:
    """Merge the hook entries into the settings file at `path` (created when missing); the old
    file is first copied to `settings.json.<UTC time>.bak`; the new one replaces it atomically."""
    settings: dict[str, Any] = {}
    if path.exists():
        try:
            settings = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError as error:
            raise SettingsError(f"{path} is not valid JSON: {error}") from error
        if not isinstance(settings, dict):
            raise SettingsError(f"{path} does not hold a JSON object")
    added = merge_hooks(settings, command)
    if not added:
        return Installed(path, None, 0)
    backup = None
    if path.exists():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
        backup = path.with_name(f"{path.name}.{stamp}.bak")
        shutil.copy2(path, backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return Installed(path, backup, added)


def _runs(group: Any, matcher: str | None, command: str) -> bool:
    if not isinstance(group, dict) or group.get("matcher") != matcher:
        return False
    handlers = group.get("hooks")
    return isinstance(handlers, list) and any(
        isinstance(handler, dict) and handler.get("command") == command for handler in handlers
    )
