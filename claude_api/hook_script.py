"""`claude-api-hook`: the command Claude Code runs for every hook `claude-api hook install` adds.

For PreToolUse (Agent, Task, Skill) it is the budget check (`claude_api.guardrails.pretool`),
answered before the call starts. For every other event (SubagentStart, SubagentStop,
PostToolUse, PostToolUseFailure, SessionEnd) it keeps the payload and its arrival time in the
hook inbox (`claude_api.hook_inbox`) and leaves the recording to a detached worker
(`claude_api.hook_worker`), which records it as the hook always did, with the same event ids
and times. `--remote`: team mode, as `claude-api hook --remote`.

It always exits 0 and prints nothing but the budget check's answer; problems go to stderr and
hook.log in the data directory. Claude Code waits for it (SessionEnd, PreToolUse) or at least
starts it on every subagent and skill call, so it imports the standard library only and takes
tens of milliseconds. When the inbox cannot be written, the payload is recorded in the
foreground instead, as before the inbox, within `FOREGROUND_SECONDS`.
"""

from __future__ import annotations

import json
import sys
import time

from claude_api import hook_inbox

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    from typing import Any

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
FOREGROUND_SECONDS = 10.0
BUDGET_EVENT = "PreToolUse"


def main() -> None:
    """Entry point of the `claude-api-hook` console script."""
    remote = "--remote" in sys.argv[1:]
    try:
        data = sys.stdin.buffer.read(MAX_PAYLOAD_BYTES)
    except OSError as error:
        hook_inbox.log(f"hook input is not JSON: {error}")
        return
    arrived_ns = time.time_ns()
    payload = parse(data)
    if payload is None:
        return
    if payload.get("hook_event_name") == BUDGET_EVENT:
        from claude_api.guardrails.pretool import respond

        respond(payload)
        return
    record(data, payload, arrived_ns, remote=remote)


def parse(data: bytes, *, source: str = "claude-api-hook") -> dict[str, Any] | None:
    """The hook's JSON object; None (logged) when it is not one."""
    try:
        payload = json.loads(data)
    except ValueError as error:
        hook_inbox.log(f"hook input is not JSON: {error}", source=source)
        return None
    if not isinstance(payload, dict):
        hook_inbox.log("hook input is not a JSON object", source=source)
        return None
    return payload


def record(
    data: bytes,
    payload: dict[str, Any],
    arrived_ns: int,
    *,
    remote: bool,
    timeout: float = FOREGROUND_SECONDS,
    source: str = "claude-api-hook",
) -> None:
    """Have the hook's `payload` (`data`, as Claude Code sent it) recorded: through the inbox,
    else in the foreground within `timeout` seconds. Never raises."""
    try:
        hook_inbox.receive(data, arrived_ns, remote=remote)
        return
    except hook_inbox.InboxFull as error:
        hook_inbox.log(f"{_named(payload)} dropped, the hook inbox is full: {error}", source=source)
        return
    except OSError as error:
        hook_inbox.log(
            f"the hook inbox cannot be written ({error}); {_named(payload)} is recorded in the "
            "foreground",
            source=source,
        )
    _record_in_foreground(data, arrived_ns, remote=remote, timeout=timeout, source=source)


def _record_in_foreground(
    data: bytes, arrived_ns: int, *, remote: bool, timeout: float, source: str
) -> None:
    import subprocess

    argv = [
        sys.executable, "-P", "-m", hook_inbox.WORKER_MODULE,
        "--payload", "--arrived-ns", str(arrived_ns), *(["--remote"] if remote else []),
    ]  # fmt: skip
    try:
        # Its problems go to this hook's stderr, as the hook's own would.
        subprocess.run(argv, input=data, stdout=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        hook_inbox.log(
            f"hook gave up after {timeout:.1f}s; the next import catches up", source=source
        )
    except OSError as error:
        hook_inbox.log(f"the hook could not record in the foreground: {error}", source=source)


def _named(payload: dict[str, Any]) -> str:
    event = payload.get("hook_event_name")
    session = payload.get("session_id")
    return f"hook {event} of session {session}"


if __name__ == "__main__":
    main()
