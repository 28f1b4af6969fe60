"""Running the hook as Claude Code runs it, and waiting for the worker it starts: the hook
inbox of a data directory, its worker processes, and holding a session's import lock so that a
worker is seen at work."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from claude_api import hook_inbox

BIN = Path(sys.executable).parent
CLAUDE_API = BIN / "claude-api"
CLAUDE_API_HOOK = BIN / "claude-api-hook"


def data_directory(env: dict[str, str]) -> Path:
    """The claude-api data directory of a hook run with `env` (as platformdirs finds it)."""
    base = env.get("XDG_DATA_HOME") or os.path.join(env["HOME"], ".local", "share")
    return Path(base) / "claude-api"


def inbox_root(env: dict[str, str]) -> Path:
    return data_directory(env) / hook_inbox.INBOX_DIRECTORY


def hook_log(env: dict[str, str]) -> str:
    path = data_directory(env) / hook_inbox.LOG_FILE
    return path.read_text() if path.exists() else ""


def run_hook(
    payload: dict[str, Any] | None,
    env: dict[str, str],
    command: list[str] | None = None,
    *,
    raw: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """The hook process as Claude Code runs it: the JSON on stdin; returns when it exits."""
    return subprocess.run(
        command or [str(CLAUDE_API_HOOK)],
        input=raw if raw is not None else json.dumps(payload).encode(),
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def wait_drained(env: dict[str, str], timeout: float = 120.0) -> None:
    """Wait until no worker records an inbox of `env`'s data directory."""
    assert hook_inbox.wait_idle(str(inbox_root(env)), timeout), "the hook worker did not finish"


def inboxes(env: dict[str, str]) -> list[hook_inbox.Inbox]:
    return hook_inbox.inboxes(str(inbox_root(env)))


def the_inbox(env: dict[str, str]) -> hook_inbox.Inbox:
    [inbox] = inboxes(env)
    return inbox


def worker_processes(inbox: hook_inbox.Inbox) -> list[int]:
    """The processes running a worker of `inbox` now."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and hook_inbox.WORKER_MODULE.encode() in words
            and (inbox.directory.encode() in words)
        ):
            found.append(int(entry.name))
    return found


def wait_for_worker(inbox: hook_inbox.Inbox, timeout: float = 60.0) -> int:
    """The process id the running worker of `inbox` wrote into its lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = inbox.worker_pid()
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise AssertionError("no worker started")


@contextmanager
def session_held(transcript: Path) -> Iterator[None]:
    """Hold the import lock of the session whose main transcript is `transcript`, as an import
    of it would: a worker waits for it before recording the session."""
    descriptor = os.open(transcript, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
