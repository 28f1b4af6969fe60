"""What a Claude Code call or session is recorded under: the agent an Agent/Task call runs, the
skill a Skill call runs, a session's project (its working directory), and how long a name may be.

Standard library only: the PreToolUse hook imports it, and must start in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    from typing import Any

MAX_NAME_LENGTH = 200
AGENT_TOOLS = frozenset({"Agent", "Task"})  # "Task" is the tool's name before Claude Code 2.1.6x
SKILL_TOOL = "Skill"
DEFAULT_SUBAGENT = "general-purpose"


def agent_name(tool_input: Mapping[str, Any]) -> str:
    """The subagent an Agent/Task tool call runs: its `subagent_type`, else general-purpose."""
    return _string(tool_input.get("subagent_type")) or DEFAULT_SUBAGENT


def skill_name(tool_input: Mapping[str, Any]) -> str | None:
    """The skill a Skill tool call runs: input `skill` (2.0.50 on) or `command` (2.0.30)."""
    name = _string(tool_input.get("skill")) or _string(tool_input.get("command"))
    if name is None:
        return None
    return name.strip().lstrip("/") or None


def project_of(cwd: str | None) -> str | None:
    """The project of a session run in `cwd`: the directory itself, its end kept when it is
    longer than a name may be."""
    if not cwd:
        return None
    return cwd if len(cwd) <= MAX_NAME_LENGTH else "…" + cwd[-(MAX_NAME_LENGTH - 1) :]


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
