#!/usr/bin/env python3
"""A fake `claude` executable: replays a scripted print-mode run and records how it was called.

The script is a JSON file named by FAKE_CLAUDE_SCRIPT: `stdout` (messages, or raw strings for
lines that are not JSON), `stderr`, `exit_code`, and `hang`, `ignore_sigterm`, `spawn_child` to
play a process that outlives its timeout. Each call is appended to FAKE_CLAUDE_RECORD as JSON.

Like Claude Code, it runs the session `--session-id` names (else the script's), reports that id
in its messages, and writes the session's transcripts as it streams: the main one at
`$CLAUDE_CONFIG_DIR/projects/<cwd, every non-alphanumeric character a dash>/<session>.jsonl`, each
subagent's at `<session>/subagents/agent-<id>.jsonl` beside it with its `.meta.json`.
Standard library only: it runs under any Python 3.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VERSION = "2.1.100"
AGENT_TOOLS = ("Agent", "Task")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="claude")
    parser.add_argument("prompt", nargs="?")
    parser.add_argument("-p", "--print", action="store_true")
    parser.add_argument("--output-format", choices=["text", "json", "stream-json"], default="text")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--agent")
    parser.add_argument("--session-id")
    return parser.parse_args(argv)


def _record(path: str | None, entry: dict[str, Any]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def main(argv: list[str]) -> int:
    args = _parse(argv)
    script_path = os.environ["FAKE_CLAUDE_SCRIPT"]
    with open(script_path, encoding="utf-8") as file:
        script = json.load(file)
    if script.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = None
    if script.get("spawn_child"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    _record(
        os.environ.get("FAKE_CLAUDE_RECORD"),
        {
            "argv": argv,
            "prompt": args.prompt,
            "agent": args.agent,
            "session_id": args.session_id,
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "child_pid": child.pid if child else None,
        },
    )
    # The real CLI's checks, so that a wrong command line fails here as it would there.
    if not args.print:
        sys.stderr.write("fake claude: only print mode (-p) is scripted\n")
        return 2
    if args.output_format == "stream-json" and not args.verbose:
        sys.stderr.write(
            "Error: When using --print, --output-format=stream-json requires --verbose\n"
        )
        return 1
    if args.output_format != "stream-json" or not args.prompt:
        sys.stderr.write("fake claude: only stream-json runs with a prompt are scripted\n")
        return 2
    messages = [item for item in script.get("stdout", []) if isinstance(item, dict)]
    session = _session_id(args.session_id, script, messages)
    if session is None:
        sys.stderr.write("Error: Invalid session ID. Must be a valid UUID.\n")
        return 1
    transcript = Transcript(session, os.getcwd(), args.prompt, messages)
    if transcript.main_path.exists():
        sys.stderr.write(f"Error: Session ID {session} is already in use.\n")
        return 1
    transcript.begin()
    for number, item in enumerate(script.get("stdout", []), start=1):
        if isinstance(item, dict):
            item = _with_session(item, session)
            transcript.add(item)
        line = item if isinstance(item, str) else json.dumps(item)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if number == script.get("pause_after_line"):
            _wait_for(script["resume_file"])
    if script.get("stderr"):
        sys.stderr.write(script["stderr"])
        sys.stderr.flush()
    while script.get("hang"):
        time.sleep(60)
    return int(script.get("exit_code", 0))


def _session_id(given: str | None, script: dict[str, Any], messages: list[Any]) -> str | None:
    """The session this run is: `--session-id` (None when it is not a UUID), else the one the
    script's messages name (`keep_session`: a CLI that does not take the option)."""
    scripted = next((m["session_id"] for m in messages if m.get("session_id")), None)
    if given is None or script.get("keep_session"):
        return scripted or str(uuid.uuid4())
    try:
        return str(uuid.UUID(given))
    except ValueError:
        return None


def _with_session(message: dict[str, Any], session: str) -> dict[str, Any]:
    if "session_id" not in message:
        return message
    return {**message, "session_id": session}


def _now() -> str:
    moment = datetime.now(timezone.utc)  # noqa: UP017 (datetime.UTC needs Python 3.11)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def project_dir_name(cwd: str) -> str:
    """Claude Code's directory name for a working directory: every character that is not a
    letter or digit becomes `-`; a name over 200 characters is cut and given a hash suffix."""
    name = re.sub(r"[^A-Za-z0-9]", "-", cwd)
    if len(name) <= 200:
        return name
    return f"{name[:200]}-{hashlib.sha256(cwd.encode()).hexdigest()[:8]}"


class Transcript:
    """Writes the session's transcripts from the stream-json messages, line by line, before
    each is printed (so a reader never sees a message the transcript does not hold yet)."""

    def __init__(self, session: str, cwd: str, prompt: str | None, messages: list[Any]) -> None:
        config = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
        self.session = session
        self.cwd = cwd
        self.prompt = prompt
        self.project_dir = Path(config) / "projects" / project_dir_name(cwd)
        self.main_path = self.project_dir / f"{session}.jsonl"
        self.subagents = self.project_dir / session / "subagents"
        self.last: dict[str | None, str | None] = {}  # thread (agent id) -> last entry's uuid
        self.agent_ids: dict[str, str] = {}  # Agent tool use id -> the subagent's id
        self.agent_types: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}
        self.tasks: dict[str, str] = {}  # stream task id -> Agent tool use id
        for message in messages:  # what Claude Code knows when it spawns a subagent
            for block in _blocks(message.get("message")):
                if block.get("type") == "tool_use" and block.get("name") in AGENT_TOOLS:
                    tool_input = block.get("input") or {}
                    self.agent_types[block["id"]] = tool_input.get("subagent_type") or (
                        "general-purpose"
                    )
                    self.descriptions[block["id"]] = tool_input.get("description") or ""
            detail = message.get("tool_use_result")
            agent_id = detail.get("agentId") if isinstance(detail, dict) else None
            for block in _blocks(message.get("message")):
                if block.get("type") == "tool_result" and isinstance(agent_id, str):
                    self.agent_ids[block["tool_use_id"]] = agent_id

    def begin(self) -> None:
        self.project_dir.mkdir(parents=True, exist_ok=True)
        self._write(None, {"type": "user", "message": {"role": "user", "content": self.prompt}})

    def add(self, message: dict[str, Any]) -> None:
        kind, subtype = message.get("type"), message.get("subtype")
        owner = message.get("parent_tool_use_id")
        thread = self._thread(owner) if owner in self.agent_types else None
        if kind == "assistant":
            api = copy.deepcopy(message["message"])
            entry = {"message": api, "requestId": f"req_{api.get('id')}", "type": "assistant"}
            self._write(thread, entry)
        elif kind == "user":
            entry = {"type": "user", "message": copy.deepcopy(message["message"])}
            if "tool_use_result" in message:
                entry["toolUseResult"] = message["tool_use_result"]
            self._write(thread, entry)
        elif kind == "system" and subtype == "task_started":
            if message.get("task_id") and message.get("tool_use_id"):
                self.tasks[message["task_id"]] = message["tool_use_id"]
        elif kind == "system" and subtype == "task_notification":
            tool_use_id = message.get("tool_use_id") or self.tasks.get(message.get("task_id"))
            text = (
                "<task-notification>"
                f"<task-id>{self.agent_ids.get(tool_use_id or '', '')}</task-id>"
                f"<tool-use-id>{tool_use_id or ''}</tool-use-id>"
                f"<status>{message.get('status', 'completed')}</status>"
                f"<summary>{message.get('summary', '')}</summary>"
                "</task-notification>"
            )
            entry = {
                "type": "user",
                "message": {"role": "user", "content": text},
                "origin": {"kind": "task-notification"},
            }
            self._write(None, entry)
        elif kind == "result":
            duration = message.get("duration_ms", 0)
            self._write(
                None, {"type": "system", "subtype": "turn_duration", "durationMs": duration}
            )

    def _thread(self, tool_use_id: str) -> str:
        """The subagent transcript of an Agent call, made (with its sidecar) when first used."""
        agent_id = self.agent_ids.get(tool_use_id)
        if agent_id is None:
            agent_id = self.agent_ids[tool_use_id] = hashlib.sha1(tool_use_id.encode()).hexdigest()[
                :17
            ]
        meta = self.subagents / f"agent-{agent_id}.meta.json"
        if not meta.exists():
            self.subagents.mkdir(parents=True, exist_ok=True)
            sidecar = {
                "agentType": self.agent_types[tool_use_id],
                "description": self.descriptions.get(tool_use_id, ""),
                "toolUseId": tool_use_id,
                "spawnDepth": 1,
            }
            meta.write_text(json.dumps(sidecar), encoding="utf-8")
        return agent_id

    def _write(self, thread: str | None, entry: dict[str, Any]) -> None:
        line = {
            "parentUuid": self.last.get(thread),
            "isSidechain": thread is not None,
            **({"agentId": thread} if thread is not None else {}),
            "userType": "external",
            "entrypoint": "sdk-cli",
            "cwd": self.cwd,
            "sessionId": self.session,
            "version": VERSION,
            "gitBranch": "",
            **entry,
            "uuid": str(uuid.uuid4()),
            "timestamp": _now(),
        }
        self.last[thread] = line["uuid"]
        path = self.main_path if thread is None else self.subagents / f"agent-{thread}.jsonl"
        with path.open("a", encoding="utf-8") as file:  # Claude Code's compact JSON, one a line
            file.write(json.dumps(line, separators=(",", ":")) + "\n")


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    return (
        [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
    )


def _wait_for(path: str, limit: float = 20.0) -> None:
    """Pause mid-stream until the test creates `path`, so it can act while the run is going;
    `<path>.waiting` tells the test that the pause has begun."""
    with open(path + ".waiting", "w", encoding="utf-8"):
        pass
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
