"""The PreToolUse hook that enforces budgets when Claude Code is about to launch a subagent
(Agent/Task) or a skill; the `claude-api-hook` console script (`claude_api.hook_script`) runs it
for PreToolUse payloads.

It finds the budgets that cover the call (its agent or skill, its project, everything) and
prints Claude Code's answer: a denial with the budget's reason when a `deny` budget is spent,
the warning as context when a `warn` budget is, nothing otherwise. It always exits 0. When the
database (or the server at CLAUDE_API_URL) cannot be reached it lets the call go on and logs why
to stderr and to hook.log in the data directory.

Claude Code waits for it before every such call, and `claude-api` loads Typer and every
command first; this module imports the standard library only (psycopg for PostgreSQL), so the
whole process takes tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import datetime

from claude_api import hook_inbox
from claude_api.guardrails import dbapi
from claude_api.guardrails.launch import launch_decision
from claude_api.names import AGENT_TOOLS, SKILL_TOOL, agent_name, project_of, skill_name

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    from typing import Any

EVENT = "PreToolUse"
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
DEADLINE_SECONDS = 5.0  # then the call goes on: a budget check never holds a session up


def main() -> None:
    """The budget check alone (`python -m claude_api.guardrails.pretool`); the `claude-api-hook`
    console script (`claude_api.hook_script`) runs `respond` for PreToolUse payloads."""
    try:
        payload = json.loads(sys.stdin.buffer.read(MAX_PAYLOAD_BYTES))
    except (OSError, ValueError) as error:
        _log(f"hook input is not JSON: {error}")
        return
    if not isinstance(payload, dict):
        _log("hook input is not a JSON object")
        return
    respond(payload)


def respond(payload: dict[str, Any]) -> None:
    """Print Claude Code's answer to a PreToolUse `payload`, within `DEADLINE_SECONDS`."""
    answer: list[dict[str, Any] | None] = []
    worker = threading.Thread(target=lambda: answer.append(answer_for(payload)), daemon=True)
    worker.start()
    worker.join(DEADLINE_SECONDS)
    if not answer:
        _log(f"budget check gave up after {DEADLINE_SECONDS:.0f}s; the call goes on")
        sys.stdout.flush()
        os._exit(0)  # the worker may be stuck in a connect: do not wait for it
    if answer[0] is not None:
        sys.stdout.write(json.dumps(answer[0]) + "\n")


def answer_for(payload: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any] | None:
    """The hook's output for `payload` (None: print nothing, the call goes on). Never raises."""
    try:
        call = _call(payload)
        if call is None:
            return None
        kind, name = call
        session_id, cwd = _text(payload.get("session_id")), _text(payload.get("cwd"))
        decision = launch_decision(
            kind,
            name,
            project_id=project_of(cwd),
            session_id=session_id,
            url=dbapi.setting("URL"),
            key=dbapi.setting("KEY"),
            database_url=dbapi.database_url(),
            now=now,
        )
        return decision.hook_output()
    except Exception as error:
        _log(f"budgets not checked, the call goes on: {error}")
        return None


def _call(payload: dict[str, Any]) -> tuple[str, str] | None:
    """The (kind, name) a PreToolUse payload is about to launch, if it is a subagent or skill."""
    if payload.get("hook_event_name") != EVENT:
        return None
    tool = payload.get("tool_name")
    tool_input = payload.get("tool_input")
    tool_input = tool_input if isinstance(tool_input, dict) else {}
    if tool in AGENT_TOOLS:
        return "agent", agent_name(tool_input)
    if tool == SKILL_TOOL:
        name = skill_name(tool_input)
        return ("skill", name) if name else None
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _log(message: str) -> None:
    """To stderr and to hook.log in the data directory (as the recording hook logs)."""
    hook_inbox.log(message, name=__name__)


if __name__ == "__main__":
    main()
