"""Install the hooks into a Claude Code settings.json, keeping everything already there.

The entries run `claude-api-hook`, which keeps each payload in the hook inbox and returns in
milliseconds: SubagentStart, SubagentStop, PostToolUse and PostToolUseFailure (matcher
`Agent|Task|Skill`) run in the background (`async`); SessionEnd runs in the foreground with its
own timeout, since Claude Code exits after it. PreToolUse (`Agent|Task|Skill`) runs the budget
check (the same script) in the foreground: Claude Code waits for its decision before the
subagent or skill starts. An entry of an earlier install (`claude-api hook`, or the script
from elsewhere) is replaced, so that no payload is recorded twice.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude_api.files import PRIVATE, atomic_write, create_new

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
BUDGET_EVENT = "PreToolUse"
BUDGET_HOOK_TIMEOUT_SECONDS = 10  # the check gives up (and allows) after 5 s by itself


class SettingsError(Exception):
    """The settings file cannot be used as is: a link where none is followed, not a regular
    file, not UTF-8, not a JSON object, or `hooks` not an object of lists."""


@dataclass(frozen=True)
class Installed:
    """Where the hooks went: the settings file, its backup (None when there was no file), how
    many entries were added (0: all were there already) and how many of an earlier install
    now run the new command."""

    path: Path
    backup: Path | None
    added: int
    replaced: int = 0


def settings_path(*, project: Path | None = None, user: bool = False) -> Path:
    """`<project>/.claude/settings.json`, or the user's (`$CLAUDE_CONFIG_DIR` or `~/.claude`)."""
    if project is not None and not user:
        return project.expanduser().resolve() / ".claude" / "settings.json"
    configured = os.environ.get("CLAUDE_CONFIG_DIR", "").split(",")[0].strip()
    base = Path(configured).expanduser() if configured else Path.home() / ".claude"
    return base / "settings.json"


def merge_hooks(
    settings: dict[str, Any], command: str, *, budget_command: str | None = None
) -> tuple[int, int]:
    """Add the hook entries running `command` (and the PreToolUse budget check running
    `budget_command`, when given) to `settings` (in place); returns how many were added and
    how many were replaced. An event that already runs its command under the same matcher is
    left alone; one that runs an earlier claude-api hook command there runs the new one."""
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise SettingsError("`hooks` is not an object")
    entries = [(event, matcher, background, command) for event, matcher, background in HOOK_EVENTS]
    if budget_command is not None:
        entries.append((BUDGET_EVENT, TOOL_MATCHER, False, budget_command))
    added = replaced = 0
    for event, matcher, background, runs in entries:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise SettingsError(f"`hooks.{event}` is not a list")
        if _replace_earlier(groups, matcher, runs):
            replaced += 1
        if any(_runs(group, matcher, runs) for group in groups):
            continue
        handler: dict[str, Any] = {
            "type": "command",
            "command": runs,
            "timeout": BUDGET_HOOK_TIMEOUT_SECONDS
            if event == BUDGET_EVENT
            else HOOK_TIMEOUT_SECONDS,
        }
        if background:
            handler["async"] = True
        group: dict[str, Any] = {"hooks": [handler]}
        if matcher is not None:
            group = {"matcher": matcher, **group}
        groups.append(group)
        added += 1
    return added, replaced


def is_claude_api_hook(command: str) -> bool:
    """Whether `command` runs a claude-api hook: `claude-api hook [--remote]`, the
    `claude-api-hook` script (with `--remote` or not), or their modules run by a Python."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if words[-1:] == ["--remote"]:
        words = words[:-1]
    if not words:
        return False
    if len(words) == 1:
        return os.path.basename(words[0]) == "claude-api-hook"
    if words[-1] == "hook" and len(words) == 2:
        return os.path.basename(words[0]) == "claude-api"
    if words[-1] == "hook":
        words, modules = words[:-1], {"claude_api.client"}
    else:
        modules = {"claude_api.hook_script", "claude_api.guardrails.pretool"}
    return len(words) >= 3 and words[-2] == "-m" and words[-1] in modules


def _replace_earlier(groups: list[Any], matcher: str | None, command: str) -> bool:
    """Make the handlers of an earlier install under `matcher` (claude-api hook commands other
    than `command`) run `command`: the first of them is changed, the others are removed."""
    if not is_claude_api_hook(command):
        return False  # a command of the user's own: nothing of ours to replace
    present = any(_runs(group, matcher, command) for group in groups)
    changed = False
    for group in list(groups):
        if not isinstance(group, dict) or group.get("matcher") != matcher:
            continue
        handlers = group.get("hooks")
        if not isinstance(handlers, list):
            continue
        for handler in list(handlers):
            if not isinstance(handler, dict) or handler.get("type", "command") != "command":
                continue
            earlier = handler.get("command")
            if not isinstance(earlier, str) or earlier == command:
                continue
            if not is_claude_api_hook(earlier):
                continue
            if present:
                handlers.remove(handler)
            else:
                handler["command"] = command
                present = True
            changed = True
        if not handlers:
            groups.remove(group)
    return changed


def install_hooks(
    path: Path,
    command: str,
    *,
    budget_command: str | None = None,
    follow_link: bool = False,
    now: datetime | None = None,
) -> Installed:
    """Merge the hook entries into the settings file at `path` (created, private, when missing);
    with `budget_command`, the PreToolUse budget check too.

    The old file is first copied to a new `settings.json.<UTC time>.bak` beside it; the merged
    one is written to a fresh temporary file and renamed over it, keeping its permissions.
    A link at `path` is followed only when `follow_link` (the user's own settings, often linked
    from a dotfiles repository): its target is updated and stays where it is. A project's tree
    may come from anyone, so there a link at `path` or at its directory is refused.
    Raises SettingsError for a file that cannot be used as is; it is then left untouched.
    """
    target = Path(os.path.realpath(path)) if follow_link else path
    if not follow_link:
        _refuse_link(path.parent)
    current = _read(target, shown=path)
    settings = _parse(current.data, shown=path) if current is not None else {}
    try:
        added, replaced = merge_hooks(settings, command, budget_command=budget_command)
    except SettingsError as error:
        raise SettingsError(f"{path}: {error}") from None
    if not added and not replaced:
        return Installed(path, None, 0)
    backup = None
    if current is not None:
        backup = _back_up(target, current, now or datetime.now(UTC))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not follow_link:
            _refuse_link(path.parent)  # a link made while we looked is refused all the same
    with atomic_write(target, mode=current.mode if current is not None else PRIVATE) as file:
        file.write(json.dumps(settings, indent=2) + "\n")
    return Installed(path, backup, added, replaced)


@dataclass(frozen=True)
class _Current:
    data: bytes
    mode: int


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise _link_refused(path)


def _link_refused(path: Path) -> SettingsError:
    return SettingsError(f"{path} is a symbolic link; a project's links are not followed")


def _read(path: Path, *, shown: Path) -> _Current | None:
    """The settings file's bytes and permissions; None when there is none. Never follows a link
    and never blocks on a FIFO or device placed there."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _link_refused(shown) from None
        raise
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise SettingsError(f"{shown} is not a regular file")
        return _Current(file.read(), stat.S_IMODE(status.st_mode))


def _parse(data: bytes, *, shown: Path) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SettingsError(
            f"{shown} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None
    try:
        settings = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise SettingsError(f"{shown} is not valid JSON: {error}") from None
    except RecursionError:
        raise SettingsError(f"{shown} is nested too deeply to read as JSON") from None
    if not isinstance(settings, dict):
        raise SettingsError(f"{shown} does not hold a JSON object")
    return settings


def _back_up(path: Path, current: _Current, now: datetime) -> Path:
    """A new file beside `path` holding its old bytes, with its permissions; never one that is
    already there (a second backup within the same second gets a number)."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    for attempt in range(100):
        suffix = f".{attempt}" if attempt else ""
        backup = path.with_name(f"{path.name}.{stamp}{suffix}.bak")
        try:
            create_new(backup, current.data, mode=current.mode)
        except FileExistsError:
            continue
        return backup
    raise SettingsError(f"{path}: too many backups named {path.name}.{stamp}*.bak")


def _runs(group: Any, matcher: str | None, command: str) -> bool:
    if not isinstance(group, dict) or group.get("matcher") != matcher:
        return False
    handlers = group.get("hooks")
    return isinstance(handlers, list) and any(
        isinstance(handler, dict) and handler.get("command") == command for handler in handlers
    )
