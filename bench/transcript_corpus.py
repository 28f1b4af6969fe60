"""A large, realistic corpus of Claude Code transcripts for the import benchmark.

Shaped like real ones (claude-code-formats.md): sessions of lognormal size; multi-block responses
written one line per block with placeholder output counts on all but the last; tool results that
carry file contents twice (the block and `toolUseResult`); subagents in the nested layout with
sidecars (some flat, older sessions), background agents finished by notifications, Skill calls
in both input styles, typed /skills, `attributionSkill` on newer sessions, subagent progress
echoes, file-history snapshots, turn durations, synthetic error replies and a few truncated
lines. Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

MODELS = [
    ("claude-sonnet-4-5-20250929", 0.7),
    ("claude-haiku-4-5-20251001", 0.2),
    ("claude-opus-4-1-20250805", 0.1),
]
SUBAGENTS = ["general-purpose", "Explore", "Plan", "code-reviewer", "debugger", "test-runner"]
SKILLS = ["lint-fix", "review-pr", "commit", "docs:write", "deploy", "summarize"]
TOOLS = ["Read", "Bash", "Edit", "Grep", "Glob", "Write"]
WORDS = [
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be",
    "by", "this", "are", "from", "at", "or", "an", "have", "not", "function", "return", "value",
    "import", "class", "def", "self", "config", "error", "test", "file", "path", "line", "data",
    "user", "request", "response", "model", "token", "cache", "agent", "skill", "session",
    "result", "update", "build", "check", "run",
]  # fmt: skip


class Corpus:
    """Writes sessions under `root/projects` until about `size_bytes` are written."""

    def __init__(self, root: Path, *, seed: int = 7) -> None:
        self.root = root
        self.projects = root / "projects"
        self.random = random.Random(seed)
        self.pool = self._code_like_text(2_000_000)
        self.written = 0
        self.sessions = 0
        self.lines = 0
        self.ids = 0

    # ---- text -------------------------------------------------------------------------------

    def _code_like_text(self, size: int) -> str:
        """Text like file contents and command output: code with quotes, backslashes, tabs and
        newlines (JSON escapes), and some non-ASCII characters."""
        pieces: list[str] = []
        total = 0
        while total < size:
            indent = "    " * self.random.randrange(0, 4)
            words = " ".join(self.random.choice(WORDS) for _ in range(self.random.randrange(2, 9)))
            form = self.random.random()
            if form < 0.3:
                line = f'{indent}{words.replace(" ", "_")} = "{words}"\n'
            elif form < 0.45:
                line = f"{indent}# {words} → {self.random.choice(['✓', 'é', 'ü', '—', '…'])}\n"
            elif form < 0.6:
                line = f'{indent}path = r"C:\\{words}\\file.py"\t{{"{words}": [1, 2]}}\n'
            else:
                line = f"{indent}{words}({self.random.randrange(1000)})\n"
            pieces.append(line)
            total += len(line)
        return "".join(pieces)

    def text(self, size: int) -> str:
        start = self.random.randrange(0, len(self.pool) - size - 1)
        return self.pool[start : start + size]

    def lognormal(self, median: float, sigma: float, cap: float) -> int:
        return int(min(cap, median * math.exp(self.random.gauss(0, sigma))))

    def next_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}{self.ids:012x}{self.random.getrandbits(32):08x}"

    def model(self) -> str:
        pick = self.random.random()
        total = 0.0
        for name, weight in MODELS:
            total += weight
            if pick < total:
                return name
        return MODELS[0][0]

    # ---- sessions ---------------------------------------------------------------------------

    def generate(self, size_bytes: int) -> None:
        base = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
        project_count = 12
        while self.written < size_bytes:
            project = f"-home-dev-project{self.sessions % project_count}"
            start = base + timedelta(minutes=self.random.randrange(0, 60 * 24 * 45))
            target = self.lognormal(600_000, 1.0, 25_000_000)
            self.session(self.projects / project, start, min(target, size_bytes - self.written + 1))
            self.sessions += 1

    def session(self, project: Path, start: datetime, target: int) -> None:
        session_id = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
        newer = self.random.random() < 0.6  # 2.1.x with nested layout; else 2.0.x flat
        version = "2.1.100" if newer else "2.0.50"
        writer = Writer(self, session_id, f"/home/dev/{project.name[11:]}", version, start, None)
        main_path = project / f"{session_id}.jsonl"
        children: list[tuple[Writer, Path, dict[str, Any] | None]] = []
        writer.user_prompt()
        while writer.size + sum(child.size for child, _, _ in children) < target:
            roll = self.random.random()
            if roll < 0.06:
                child = self.subagent(writer, session_id, newer, project, background=roll < 0.015)
                children.append(child)
            elif roll < 0.09:
                writer.skill_call(newer)
            elif roll < 0.10:
                writer.typed_skill(newer)
            elif roll < 0.16:
                writer.turn_end()
                writer.user_prompt()
            else:
                writer.exchange()
        writer.turn_end()
        if self.random.random() < 0.05:
            writer.raw('{"type":"assistant","message":{"id":"msg_trunc')  # a truncated line
        writer.flush(main_path)
        for child, path, meta in children:
            child.flush(path)
            if meta is not None:
                path.with_name(path.name[:-6] + ".meta.json").write_bytes(orjson.dumps(meta))

    def subagent(
        self, parent: Writer, session_id: str, newer: bool, project: Path, *, background: bool
    ) -> tuple[Writer, Path, dict[str, Any] | None]:
        agent_id = f"{self.random.getrandbits(64):016x}"[: 17 if newer else 7]
        kind = self.random.choice(SUBAGENTS)
        tool = "Agent" if newer and self.random.random() < 0.7 else "Task"
        tool_use_id = self.next_id("toolu_")
        tool_input: dict[str, Any] = {"description": "Do a part", "prompt": self.text(300)}
        if kind != "general-purpose" or self.random.random() < 0.5:
            tool_input["subagent_type"] = kind
        if background:
            tool_input["run_in_background"] = True
        parent.response([parent.tool_use_block(tool, tool_use_id, tool_input)])
        child = Writer(self, session_id, parent.cwd, parent.version, parent.clock, agent_id)
        child.user_prompt(tool_input["prompt"])
        for _ in range(self.random.randrange(3, 40)):
            if newer and self.random.random() < 0.3:
                parent.progress_echo(agent_id)
            child.exchange()
        parent.clock = max(parent.clock, child.clock)
        if background:
            parent.tool_result(
                tool_use_id,
                "Async agent launched.",
                {"status": "async_launched", "agentId": agent_id, "description": "Do a part",
                 "prompt": tool_input["prompt"], "outputFile": f"/tmp/{agent_id}.output"},
            )  # fmt: skip
            parent.exchange()
            parent.notification(tool_use_id, agent_id, self.random.random() < 0.9)
        elif self.random.random() < 0.04:
            message = "Agent terminated early due to an API error: overloaded"
            parent.tool_result(tool_use_id, message, f"Error: {message}", is_error=True)
        else:
            parent.tool_result(
                tool_use_id,
                self.text(400),
                {"status": "completed", "agentId": agent_id, "agentType": kind,
                 "content": [{"type": "text", "text": self.text(400)}],
                 "totalDurationMs": self.random.randrange(5_000, 600_000),
                 "totalTokens": 20_000, "totalToolUseCount": 9,
                 "usage": {"input_tokens": 4, "output_tokens": 400}},
            )  # fmt: skip
        if newer:
            path = project / session_id / "subagents" / f"agent-{agent_id}.jsonl"
            meta = {"agentType": kind, "description": "Do a part", "toolUseId": tool_use_id,
                    "spawnDepth": 1}  # fmt: skip
            return child, path, meta
        return child, project / f"agent-{agent_id}.jsonl", None


class Writer:
    """One transcript being composed."""

    def __init__(
        self,
        corpus: Corpus,
        session_id: str,
        cwd: str,
        version: str,
        clock: datetime,
        agent_id: str | None,
    ) -> None:
        self.corpus = corpus
        self.random = corpus.random
        self.session_id = session_id
        self.cwd = cwd
        self.version = version
        self.clock = clock
        self.agent_id = agent_id
        self.parts: list[bytes] = []
        self.size = 0
        self.last_uuid: str | None = None
        self.skill: str | None = None

    def stamp(self, seconds: float) -> str:
        self.clock += timedelta(seconds=seconds)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.clock.microsecond // 1000:03d}Z"

    def raw(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.parts.append(data + b"\n")
        self.size += len(data) + 1
        self.corpus.written += len(data) + 1
        self.corpus.lines += 1

    def entry(self, kind: str, seconds: float, **fields: Any) -> None:
        entry_uuid = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
        data: dict[str, Any] = {
            "parentUuid": self.last_uuid, "isSidechain": self.agent_id is not None,
            "userType": "external", "entrypoint": "cli", "cwd": self.cwd,
            "sessionId": self.session_id, "version": self.version, "gitBranch": "main",
        }  # fmt: skip
        if self.agent_id is not None:
            data["agentId"] = self.agent_id
        data.update(fields)
        data.update(type=kind, uuid=entry_uuid, timestamp=self.stamp(seconds))
        self.last_uuid = entry_uuid
        self.raw(orjson.dumps(data))

    def user_prompt(self, text: str | None = None) -> None:
        self.entry("user", 30, message={"role": "user", "content": text or self.corpus.text(200)})

    def turn_end(self) -> None:
        self.skill = None
        self.entry("system", 0.1, subtype="turn_duration", durationMs=42_000, messageCount=12)
        if self.random.random() < 0.3:
            self.raw(orjson.dumps({"type": "file-history-snapshot", "messageId": "m",
                                   "snapshot": {"trackedFileBackups": {}, "timestamp": "x"},
                                   "isSnapshotUpdate": False}))  # fmt: skip

    def tool_use_block(self, tool: str, tool_use_id: str, tool_input: dict[str, Any]) -> dict:
        return {"type": "tool_use", "id": tool_use_id, "name": tool, "input": tool_input}

    def response(self, tail: list[dict[str, Any]], *, model: str | None = None) -> None:
        """One API response: optional thinking and text blocks, then `tail`, a line each."""
        blocks: list[dict[str, Any]] = []
        if self.random.random() < 0.5:
            blocks.append({"type": "thinking", "thinking": self.corpus.text(
                self.corpus.lognormal(300, 1.0, 8000)), "signature": "Eq" + "x" * 200})  # fmt: skip
        if self.random.random() < 0.6:
            size = self.corpus.lognormal(150, 1.0, 6000)
            blocks.append({"type": "text", "text": self.corpus.text(size)})
        blocks += tail
        if not blocks:
            blocks.append({"type": "text", "text": self.corpus.text(80)})
        message_id = self.corpus.next_id("msg_")
        request_id = self.corpus.next_id("req_")
        model = model or self.corpus.model()
        usage = {
            "input_tokens": self.random.randrange(1, 50),
            "cache_creation_input_tokens": self.random.choice(
                [0, 0, self.random.randrange(100, 8000)]
            ),
            "cache_read_input_tokens": self.random.randrange(5_000, 120_000),
            "output_tokens": self.random.randrange(20, 2500),
            "service_tier": "standard",
        }  # fmt: skip
        if self.random.random() < 0.01:
            self.entry("assistant", 1, isApiErrorMessage=True, message={
                "id": self.corpus.next_id("msg_"), "type": "message", "role": "assistant",
                "model": "<synthetic>", "content": [{"type": "text", "text": "API Error"}],
                "usage": {"input_tokens": 0, "output_tokens": 0}})  # fmt: skip
        extra: dict[str, Any] = {}
        if self.skill is not None and self.version.startswith("2.1"):
            extra["attributionSkill"] = self.skill
        for index, block in enumerate(blocks):
            last = index == len(blocks) - 1
            line_usage = dict(usage, output_tokens=usage["output_tokens"] if last else 1)
            self.entry(
                "assistant",
                2.5 if index == 0 else 0.05,
                message={"id": message_id, "type": "message", "role": "assistant", "model": model,
                         "content": [block], "stop_reason": "tool_use" if last else None,
                         "usage": line_usage},
                requestId=request_id,
                **extra,
            )  # fmt: skip

    def tool_result(
        self, tool_use_id: str, content: str, result: Any, *, is_error: bool = False
    ) -> None:
        block: dict[str, Any] = {
            "tool_use_id": tool_use_id,
            "type": "tool_result",
            "content": content,
        }
        if is_error:
            block["is_error"] = True
        self.entry("user", 1.5, message={"role": "user", "content": [block]}, toolUseResult=result)

    def exchange(self) -> None:
        """A response calling an ordinary tool, and the tool's result (file text, output)."""
        corpus = self.corpus
        tool = self.random.choice(TOOLS)
        tool_use_id = corpus.next_id("toolu_")
        path = f"{self.cwd}/src/{corpus.text(12).strip().replace(' ', '_')}.py"
        tool_input: dict[str, Any] = {"file_path": path}
        if tool == "Bash":
            tool_input = {"command": corpus.text(60), "description": "Run it"}
        elif tool in ("Edit", "Write"):
            tool_input["old_string"] = corpus.text(corpus.lognormal(200, 1.0, 8_000))
            tool_input["new_string"] = corpus.text(corpus.lognormal(250, 1.0, 8_000))
        self.response([self.tool_use_block(tool, tool_use_id, tool_input)])
        if self.version.startswith("2.1") and self.random.random() < 0.5:
            self.entry("progress", 0.1, data={"type": "hook_progress", "hookEvent": "PostToolUse",
                       "hookName": "PostToolUse:" + tool, "command": "lint.sh"},
                       toolUseID=tool_use_id, parentToolUseID=tool_use_id)  # fmt: skip
        if tool == "Read":
            content = corpus.text(corpus.lognormal(1_500, 1.3, 60_000))
            result: dict[str, Any] = {"type": "text", "file": {"filePath": path, "content": content,
                                      "numLines": content.count("\n"), "startLine": 1}}  # fmt: skip
        elif tool == "Bash":
            content = corpus.text(corpus.lognormal(300, 1.3, 20_000))
            result = {"stdout": content, "stderr": "", "interrupted": False, "isImage": False}
        elif tool in ("Edit", "Write"):
            content = f"The file {path} has been updated."
            result = {"filePath": path, "oldString": tool_input.get("old_string", ""),
                      "newString": tool_input.get("new_string", ""), "structuredPatch": [
                      {"oldStart": 1, "lines": corpus.text(300).split(" ")[:20]}]}  # fmt: skip
        else:
            content = corpus.text(corpus.lognormal(150, 1.0, 5_000))
            result = {"filenames": content.split(" ")[:10], "numFiles": 10}
        self.tool_result(tool_use_id, content, result)

    def skill_call(self, newer: bool) -> None:
        name = self.random.choice(SKILLS)
        tool_use_id = self.corpus.next_id("toolu_")
        tool_input = {"skill": name, "args": "src/"} if newer else {"command": f"/{name}"}
        self.response([self.tool_use_block("Skill", tool_use_id, tool_input)])
        self.tool_result(
            tool_use_id, f"Launching skill: {name}", {"success": True, "commandName": name}
        )
        self.skill = name

    def typed_skill(self, newer: bool) -> None:
        self.turn_end()
        name = self.random.choice(SKILLS)
        self.entry("user", 20, message={"role": "user", "content": (
            f"<command-message>{name} is running…</command-message>\n"
            f"<command-name>/{name}</command-name>\n<command-args></command-args>")})  # fmt: skip
        self.skill = name if newer else None
        self.exchange()

    def progress_echo(self, agent_id: str) -> None:
        content = [{"type": "text", "text": self.corpus.text(300)}]
        nested = {"type": "assistant", "message": {"id": self.corpus.next_id("msg_"),
                  "model": "claude-haiku-4-5-20251001", "content": content,
                  "usage": {"input_tokens": 3, "output_tokens": 50}}}  # fmt: skip
        self.entry(
            "progress", 0.5, data={"type": "agent_progress", "agentId": agent_id, "message": nested}
        )

    def notification(self, tool_use_id: str, agent_id: str, completed: bool) -> None:
        status = "completed" if completed else "failed"
        text = (f"<task-notification>\n<task-id>{agent_id}</task-id>\n<tool-use-id>{tool_use_id}"
                f"</tool-use-id>\n<status>{status}</status>\n<summary>Agent {status}</summary>\n"
                "</task-notification>")  # fmt: skip
        self.entry(
            "user",
            60,
            message={"role": "user", "content": text},
            origin={"kind": "task-notification"},
        )

    def flush(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as file:
            file.write(b"".join(self.parts))
        self.parts = []
