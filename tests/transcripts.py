"""Compose Claude Code transcripts from the documented fields (shared/claude-code-formats.md),
line by line as Claude Code writes them, and keep a ledger of what each line should count for.

The ledger is what the tests compare against: every response the builder writes is booked once
(final usage, model, owner label), however many lines carry it, so expected tokens and costs
are computed from the composed inputs, never from the importer.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"
UNKNOWN_MODEL = "claude-imaginary-9"
# Published list prices, USD per million tokens: input, output, cache read, 5-minute cache write.
PRICES = {SONNET: (3.0, 15.0, 0.30, 3.75), HAIKU: (1.0, 5.0, 0.10, 1.25)}
MTOK = 1_000_000

_ids = itertools.count(1)


def next_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


@dataclass
class Booked:
    """One API response as the ledger counts it."""

    owner: str
    model: str
    input: int
    output: int
    cache_read: int
    cache_write: int
    at: datetime
    reported_cost: float | None = None

    @property
    def cost(self) -> float | None:
        if self.reported_cost is not None:
            return self.reported_cost
        prices = PRICES.get(self.model)
        if prices is None:
            return None
        p_in, p_out, p_read, p_write = prices
        return (
            self.input * p_in
            + self.output * p_out
            + self.cache_read * p_read
            + self.cache_write * p_write
        ) / MTOK


@dataclass
class Ledger:
    """Every response booked to an owner label (`main`, a subagent or skill label)."""

    booked: list[Booked] = field(default_factory=list)

    def book(self, entry: Booked) -> None:
        self.booked.append(entry)

    def of(self, owner: str, *, until: datetime | None = None) -> list[Booked]:
        """The responses booked to `owner` (those written entirely by `until`)."""
        return [
            entry
            for entry in self.booked
            if entry.owner == owner and (until is None or entry.at <= until)
        ]

    def tokens(self, owner: str, *, until: datetime | None = None) -> dict[str, int]:
        entries = self.of(owner, until=until)
        return {
            "input_tokens": sum(e.input for e in entries),
            "output_tokens": sum(e.output for e in entries),
            "cache_read_tokens": sum(e.cache_read for e in entries),
            "cache_creation_tokens": sum(e.cache_write for e in entries),
        }

    def cost(self, owner: str, *, until: datetime | None = None) -> float | None:
        costs = [entry.cost for entry in self.of(owner, until=until)]
        return None if any(cost is None for cost in costs) else sum(costs)  # type: ignore[misc]

    def total_tokens(self) -> int:
        return sum(e.input + e.output + e.cache_read + e.cache_write for e in self.booked)

    def total_cost(self) -> float:
        return sum(entry.cost or 0.0 for entry in self.booked)

    def cost_by_day(self, day_of: dict[str, str]) -> dict[str, float]:
        """Cost per day, each owner's responses on the day its invocation started."""
        days: dict[str, float] = defaultdict(float)
        for entry in self.booked:
            days[day_of[entry.owner]] += entry.cost or 0.0
        return dict(days)


class Transcript:
    """One transcript file: a session's main thread, or a subagent's (`agent_id`)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        session_id: str,
        cwd: str,
        start: datetime,
        owner: str = "main",
        agent_id: str | None = None,
        version: str = "2.1.100",
    ) -> None:
        self.ledger = ledger
        self.session_id = session_id
        self.cwd = cwd
        self.clock = start
        self.owner = owner
        self.agent_id = agent_id
        self.version = version
        self.lines: list[str] = []
        self.times: list[datetime] = []
        self._last_uuid: str | None = None

    # ---- time --------------------------------------------------------------------------------

    def tick(self, seconds: float = 1.0) -> str:
        self.clock += timedelta(seconds=seconds)
        return stamp(self.clock)

    # ---- raw lines ---------------------------------------------------------------------------

    def entry(self, kind: str, *, seconds: float = 1.0, **fields: Any) -> dict[str, Any]:
        """An entry in the common envelope; returns it (already written)."""
        entry_uuid = str(uuid.uuid4())
        data: dict[str, Any] = {
            "parentUuid": self._last_uuid,
            "isSidechain": self.agent_id is not None,
            "userType": "external",
            "entrypoint": "cli",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": self.version,
            "gitBranch": "main",
        }
        if self.agent_id is not None:
            data["agentId"] = self.agent_id
        data.update(fields)
        data.update(type=kind, uuid=entry_uuid, timestamp=self.tick(seconds))
        self.times.append(self.clock)
        self._last_uuid = entry_uuid
        self.raw(orjson.dumps(data).decode())
        return data

    def raw(self, line: str) -> None:
        self.lines.append(line)

    # ---- user side ---------------------------------------------------------------------------

    def prompt(self, text: str) -> None:
        self.entry("user", message={"role": "user", "content": text}, promptId=next_id("p-"))

    def tool_result(
        self,
        tool_use_id: str,
        *,
        content: Any,
        result: Any = None,
        is_error: bool = False,
        seconds: float = 1.0,
        **extra: Any,
    ) -> None:
        block: dict[str, Any] = {
            "tool_use_id": tool_use_id,
            "type": "tool_result",
            "content": content,
        }
        if is_error:
            block["is_error"] = True
        fields: dict[str, Any] = {"message": {"role": "user", "content": [block]}, **extra}
        if result is not None:
            fields["toolUseResult"] = result
        self.entry("user", seconds=seconds, **fields)

    def agent_result(
        self,
        tool_use_id: str,
        agent_id: str,
        *,
        agent_type: str = "general-purpose",
        duration_ms: int = 60_000,
        seconds: float = 60.0,
    ) -> None:
        self.tool_result(
            tool_use_id,
            content=[{"type": "text", "text": "Done."}],
            result={
                "status": "completed",
                "prompt": "work",
                "agentId": agent_id,
                "agentType": agent_type,
                "content": [{"type": "text", "text": "Done."}],
                "totalDurationMs": duration_ms,
                "totalTokens": 1234,
                "totalToolUseCount": 3,
                "usage": {"input_tokens": 1, "output_tokens": 999, "cache_read_input_tokens": 7},
            },
            seconds=seconds,
        )

    def agent_error(self, tool_use_id: str, message: str, *, seconds: float = 5.0) -> None:
        self.tool_result(
            tool_use_id, content=message, result=f"Error: {message}", is_error=True, seconds=seconds
        )

    def agent_launched(self, tool_use_id: str, agent_id: str) -> None:
        self.tool_result(
            tool_use_id,
            content=[{"type": "text", "text": "Async agent launched."}],
            result={
                "status": "async_launched",
                "agentId": agent_id,
                "description": "background work",
                "prompt": "work",
                "outputFile": f"/tmp/{agent_id}.output",
                "isAsync": True,
            },
            seconds=0.5,
        )

    def notification(
        self, tool_use_id: str, task_id: str, status: str = "completed", *, seconds: float = 30.0
    ) -> None:
        text = (
            f"<task-notification>\n<task-id>{task_id}</task-id>\n"
            f"<tool-use-id>{tool_use_id}</tool-use-id>\n<status>{status}</status>\n"
            f'<summary>Agent "background work" {status}</summary>\n<result>ok</result>\n'
            "</task-notification>"
        )
        self.entry(
            "user",
            seconds=seconds,
            message={"role": "user", "content": text},
            origin={"kind": "task-notification"},
        )

    def skill_result(
        self, tool_use_id: str, name: str, *, success: bool = True, **extra: Any
    ) -> None:
        result: dict[str, Any] = {"success": success, "commandName": name, **extra}
        self.tool_result(
            tool_use_id,
            content=f"Launching skill: {name}" if success else f"Unknown skill: {name}",
            result=result,
            is_error=not success,
            seconds=0.5,
        )

    def typed_command(self, name: str, args: str = "") -> None:
        text = (
            f"<command-message>{name} is running…</command-message>\n"
            f"<command-name>/{name}</command-name>\n<command-args>{args}</command-args>"
        )
        self.entry("user", message={"role": "user", "content": text})

    def turn_duration(self) -> None:
        self.entry("system", subtype="turn_duration", durationMs=1000, messageCount=3, isMeta=False)

    # ---- assistant side ------------------------------------------------------------------------

    def respond(
        self,
        *blocks: dict[str, Any],
        model: str = SONNET,
        usage: tuple[int, int, int, int] = (10, 100, 1000, 200),
        owner: str | None = None,
        split: bool = True,
        cost_usd: float | None = None,
        seconds: float = 2.0,
        message_id: str | None = None,
        **extra: Any,
    ) -> str:
        """One API response, written as one line per content block (each with the response's
        usage; earlier lines with a placeholder output count of 1) and booked once."""
        input_tokens, output_tokens, cache_read, cache_write = usage
        message_id = message_id or next_id("msg_")
        request_id = next_id("req_")
        blocks = blocks or ({"type": "text", "text": "ok"},)
        per_line = list(blocks) if split else [list(blocks)]
        for index, content in enumerate(per_line):
            last = index == len(per_line) - 1
            line_usage = {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
                "output_tokens": output_tokens if last else 1,
                "service_tier": "standard",
            }
            fields: dict[str, Any] = {
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content if isinstance(content, list) else [content],
                    "stop_reason": "tool_use" if last else None,
                    "usage": line_usage,
                },
                "requestId": request_id,
                **extra,
            }
            if cost_usd is not None:
                fields["costUSD"] = cost_usd
            self.entry("assistant", seconds=seconds if index == 0 else 0.01, **fields)
        self.ledger.book(
            Booked(
                owner=owner or self.owner,
                model=model,
                input=input_tokens,
                output=output_tokens,
                cache_read=cache_read,
                cache_write=cache_write,
                at=self.clock,
                reported_cost=cost_usd,
            )
        )
        return message_id

    def synthetic(self) -> None:
        self.entry(
            "assistant",
            message={
                "id": next_id("msg_"),
                "type": "message",
                "role": "assistant",
                "model": "<synthetic>",
                "content": [{"type": "text", "text": "API Error: 529 overloaded"}],
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
            isApiErrorMessage=True,
        )

    # ---- writing -------------------------------------------------------------------------------

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def write(self, path: Path, *, upto: int | None = None, mtime: datetime | None = None) -> Path:
        """Write the transcript (its first `upto` lines); `mtime` sets the file's change time."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = self.lines if upto is None else self.lines[:upto]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        if mtime is not None:
            os.utime(path, (mtime.timestamp(), mtime.timestamp()))
        return path


# ---- tool-use blocks ---------------------------------------------------------------------------


def agent_call(
    subagent_type: str | None = None,
    *,
    tool: str = "Agent",
    background: bool = False,
    tool_use_id: str | None = None,
) -> dict[str, Any]:
    tool_input: dict[str, Any] = {"description": "Do the work", "prompt": "Do the work well"}
    if subagent_type is not None:
        tool_input["subagent_type"] = subagent_type
    if background:
        tool_input["run_in_background"] = True
    return {
        "type": "tool_use",
        "id": tool_use_id or next_id("toolu_"),
        "name": tool,
        "input": tool_input,
    }


def skill_call(name: str, *, style: str = "skill", args: str | None = None) -> dict[str, Any]:
    """A Skill tool call; `style` "command" is the 2.0.30 input (`{"command": "/name"}`)."""
    tool_input: dict[str, Any] = {"command": f"/{name}"} if style == "command" else {"skill": name}
    if args is not None:
        tool_input["args"] = args
    return {"type": "tool_use", "id": next_id("toolu_"), "name": "Skill", "input": tool_input}


def other_call(name: str = "Read") -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": next_id("toolu_"),
        "name": name,
        "input": {"file_path": "/home/dev/demo/src/app.py"},
    }


def thinking(text: str = "Let me think.") -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": "sig"}


def text_block(text: str = "ok") -> dict[str, Any]:
    return {"type": "text", "text": text}


def write_meta(path: Path, **keys: Any) -> None:
    """The `agent-<id>.meta.json` sidecar next to a subagent transcript at `path`."""
    path.with_name(path.name.removesuffix(".jsonl") + ".meta.json").write_bytes(orjson.dumps(keys))
