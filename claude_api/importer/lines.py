"""Read the lines a transcript gained since the last import and keep what matters as records.

Speed comes from not parsing most lines: a cheap substring test picks the lines that can matter
(assistant entries, results of tracked tool calls, notifications, typed commands, turn ends) and
only those go through orjson. Claude Code writes compact JSON (`JSON.stringify`), so a key and its
value read `"type":"assistant"`; an escaped quote inside a string can never fake such a pattern.
Lines the filter passes over are checked only for their braces, to count truncated lines.

Dedupe: one API response is written as several lines sharing `message.id`; it counts once, with
the largest output count (`claude_api.spend.supersedes`). The key is the message id (else the
request id), across every transcript of a session: a copy of a main-thread response in a forked
or side-question sidechain file is a replay and is skipped, the main thread being read first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from claude_api.events import Kind
from claude_api.importer.fields import (
    BUILTIN_COMMANDS,
    notification,
    origin,
    prompt_key,
    tag,
    text_of,
    tool_use,
)
from claude_api.importer.records import (
    Command,
    Record,
    Response,
    ToolResult,
    TurnEnd,
)
from claude_api.spend import SYNTHETIC_MODEL, Request, supersedes

BLOCK_SIZE = 8 * 1024 * 1024
# Skipped-line reasons, as the summary names them.
MALFORMED = "malformed"
SYNTHETIC = "synthetic"
DUPLICATE = "duplicate"
OTHER_TYPE = "other type"
NO_USAGE = "no usage"

_ASSISTANT = b'"type":"assistant"'
_TOOL_USE_ID = b'"tool_use_id"'
_USER = b'"type":"user"'
_TIMESTAMP = b'"timestamp":"'
_CWD = b'"cwd":"'
_PROMPT_TRIES = 4  # lines holding `"type":"user"` looked at for a transcript's first prompt
_NOT_PROMPTS = (
    "<command-",
    "<local-command",
    "<task-notification",
    "<bash-",
    "<system-reminder",
    "Caveat:",
)


@dataclass
class Chunk:
    """What a read of one transcript found, from `start` to `offset`."""

    start: int
    offset: int = 0
    lines: int = 0
    records: list[Record] = field(default_factory=list)
    first_at: str | None = None
    last_at: str | None = None
    cwd: str | None = None
    agent_hint: str | None = None  # `attributionAgent` of the file's first attributed response
    prompt: str | None = None  # `prompt_key` of the first user prompt, read from the start


class TranscriptReader:
    """Reads the new lines of one transcript into a `Chunk`.

    `watch`: ids of tracked tool calls still waiting for their result (extended as tool calls
    are read). `windows_open`: a skill started in this transcript may still be running, so its
    turn's end must be noticed. `recent`: responses counted by earlier imports of this file, by
    key, for a response whose lines straddle two imports. `seen`: keys of responses already
    counted anywhere in the session (shared by the session's transcripts and updated here).
    """

    def __init__(
        self,
        *,
        watch: set[str],
        windows_open: bool,
        recent: dict[str, Request],
        seen: set[str],
        stats: Counter[str],
    ) -> None:
        self.watch = watch
        self.windows_open = windows_open
        self.recent = recent
        self.seen = seen
        self.stats = stats
        self._own: dict[str, int] = {}  # key -> index in records, for this read's responses

    def read(self, path: Path, start: int, *, final: bool) -> Chunk:
        """Read complete lines from byte `start`; a last line without its newline is left for
        the next import unless `final` (the session is over: it is read as it is)."""
        chunk = Chunk(start=start, offset=start)
        with path.open("rb") as file:
            file.seek(start)
            tail = b""
            while True:
                block = file.read(BLOCK_SIZE)
                if not block:
                    break
                data = tail + block if tail else block
                cut = data.rfind(b"\n")
                if cut < 0:
                    tail = data
                    continue
                tail = data[cut + 1 :]
                self._lines(data[:cut], chunk)
                chunk.offset += cut + 1
            if final and tail.strip():
                self._lines(tail, chunk)
                chunk.offset += len(tail)
        return chunk

    # ---- lines -----------------------------------------------------------------------------

    def _lines(self, data: bytes, chunk: Chunk) -> None:
        if chunk.first_at is None:
            chunk.first_at = _timestamp_at(data, data.find(_TIMESTAMP))
        last = _timestamp_at(data, data.rfind(_TIMESTAMP))
        if last is not None:
            chunk.last_at = last
        if chunk.start == 0 and chunk.offset == 0:  # the transcript's first lines
            chunk.cwd = chunk.cwd or _cwd(data)
            chunk.prompt = _first_prompt(data)
        stats = self.stats
        watch = self.watch
        parse = orjson.loads
        lines = 0
        for line in data.split(b"\n"):
            if not line or line.isspace():
                continue
            lines += 1
            # The cheap filter: which lines can matter (see the module docstring).
            if not (
                _ASSISTANT in line
                or (watch and _TOOL_USE_ID in line and self._watched(line))
                or b"<task-notification>" in line
                or b"<command-name>" in line
                or b'"turn_duration"' in line
                or (self.windows_open and _USER in line and _TOOL_USE_ID not in line)
            ):
                if (line[:1] != b"{" or line[-1:] != b"}") and not _braced(line):
                    stats[MALFORMED] += 1
                continue
            try:
                entry = parse(line)
            except orjson.JSONDecodeError:
                stats[MALFORMED] += 1
                continue
            if type(entry) is dict:
                self._entry(entry, chunk)
            else:
                stats[MALFORMED] += 1
        chunk.lines += lines

    def _watched(self, line: bytes) -> bool:
        return any(tool_use_id.encode() in line for tool_use_id in self.watch)

    def _entry(self, entry: dict[str, Any], chunk: Chunk) -> None:
        kind = entry.get("type")
        at = entry.get("timestamp")
        at = at if isinstance(at, str) else chunk.last_at or ""
        if kind == "assistant":
            self._assistant(entry, at, chunk)
        elif kind == "user":
            self._user(entry, at, chunk)
        elif kind == "system":
            if entry.get("subtype") == "turn_duration":
                self._turn_end(at, chunk)
        else:
            self.stats[OTHER_TYPE] += 1

    def _assistant(self, entry: dict[str, Any], at: str, chunk: Chunk) -> None:
        message = entry.get("message")
        if not isinstance(message, dict):
            self.stats[NO_USAGE] += 1
            return
        model = message.get("model")
        if model == SYNTHETIC_MODEL:
            self.stats[SYNTHETIC] += 1
            return
        usage = message.get("usage")
        replayed = False
        if isinstance(usage, dict):
            replayed = not self._response(entry, message, usage, model, at, chunk)
        else:
            self.stats[NO_USAGE] += 1
        if replayed:
            return  # a copy of a response read before: its tool calls were read with it
        content = message.get("content")
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_use":
                continue
            call = tool_use(block, at)
            if call is not None:
                chunk.records.append(call)
                self.watch.add(call.tool_use_id)
                if call.kind is Kind.SKILL:
                    self.windows_open = True

    def _response(
        self,
        entry: dict[str, Any],
        message: dict[str, Any],
        usage: dict[str, Any],
        model: Any,
        at: str,
        chunk: Chunk,
    ) -> bool:
        """Count the response; False when it is a copy of one counted before."""
        key = message.get("id")
        if type(key) is not str or not key:
            key = entry.get("requestId")
            key = key if isinstance(key, str) and key else None
        if key is not None:
            index = self._own.get(key)
            if index is not None:
                # Another line of a response of this read: only a larger output count matters.
                self.stats[DUPLICATE] += 1
                counted = chunk.records[index]
                output = usage.get("output_tokens")
                if type(output) is int and output > counted.request.output_tokens:  # type: ignore[union-attr]
                    counted.request = _request(usage, model)  # type: ignore[union-attr]
                return True
            counted_before = self.recent.get(key)
            if counted_before is not None:
                self.stats[DUPLICATE] += 1
                request = _request(usage, model)
                if supersedes(request, counted_before):
                    self.recent[key] = request
                    chunk.records.append(
                        Response(key, at, request, None, None, replaces=counted_before)
                    )
                return True
            if key in self.seen:
                self.stats[DUPLICATE] += 1
                return False
            self.seen.add(key)
            self._own[key] = len(chunk.records)
        cost = entry.get("costUSD")
        reported = float(cost) if isinstance(cost, int | float) and cost >= 0 else None
        skill = entry.get("attributionSkill")
        agent = entry.get("attributionAgent")
        if chunk.agent_hint is None and isinstance(agent, str) and agent:
            chunk.agent_hint = agent
        chunk.records.append(
            Response(
                key, at, _request(usage, model), reported, skill if type(skill) is str else None
            )
        )
        return True

    def _user(self, entry: dict[str, Any], at: str, chunk: Chunk) -> None:
        message = entry.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            results = [
                block
                for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            ]
            if results:
                detail = entry.get("toolUseResult") if len(results) == 1 else None
                for block in results:
                    self._tool_result(block, detail, at, chunk)
                return
        text = text_of(content)
        if "<task-notification>" in text or origin(entry) == "task-notification":
            self._turn_end(at, chunk)
            chunk.records.append(notification(text, at))
            return
        if "<command-name>" in text:
            name = tag(text, "command-name")
            name = name.strip().lstrip("/") if name else ""
            if name and name.split()[0] not in BUILTIN_COMMANDS:
                self._turn_end(at, chunk)
                uuid = entry.get("uuid")
                chunk.records.append(Command(name, at, uuid if isinstance(uuid, str) else at))
                self.windows_open = True
            return
        if entry.get("isMeta") or entry.get("isCompactSummary"):
            return
        if text and not text.lstrip().startswith(_NOT_PROMPTS):
            self._turn_end(at, chunk)

    def _tool_result(self, block: dict[str, Any], detail: Any, at: str, chunk: Chunk) -> None:
        tool_use_id = block.get("tool_use_id")
        if not isinstance(tool_use_id, str) or tool_use_id not in self.watch:
            return
        self.watch.discard(tool_use_id)
        chunk.records.append(
            ToolResult(
                tool_use_id=tool_use_id,
                at=at,
                is_error=bool(block.get("is_error")),
                text=text_of(block.get("content")),
                detail=detail,
            )
        )

    def _turn_end(self, at: str, chunk: Chunk) -> None:
        if self.windows_open:
            chunk.records.append(TurnEnd(at))
            self.windows_open = False


# ---- fields ---------------------------------------------------------------------------------


def _request(usage: dict[str, Any], model: Any) -> Request:
    """`Request.from_usage`, with a fast path for the usual well-formed counts."""
    model = model if type(model) is str else None
    counts = (
        usage.get("input_tokens", 0),
        usage.get("output_tokens", 0),
        usage.get("cache_read_input_tokens", 0),
        usage.get("cache_creation_input_tokens", 0),
    )
    cache_creation = usage.get("cache_creation")
    one_hour = (
        cache_creation.get("ephemeral_1h_input_tokens", 0) if type(cache_creation) is dict else 0
    )
    for value in (*counts, one_hour):
        if type(value) is not int or value < 0:
            return Request.from_usage(usage, model)
    return Request(model, *counts, one_hour)


def _first_prompt(data: bytes) -> str | None:
    """`prompt_key` of the first user entry that is a prompt (text, not tool results): a
    subagent transcript begins with the prompt its call gave it."""
    index = data.find(_USER)
    for _ in range(_PROMPT_TRIES):
        if index < 0:
            return None
        line_start = data.rfind(b"\n", 0, index) + 1
        line_end = data.find(b"\n", index)
        line_end = line_end if line_end >= 0 else len(data)
        try:
            entry = orjson.loads(data[line_start:line_end])
        except orjson.JSONDecodeError:
            entry = None
        if isinstance(entry, dict) and entry.get("type") == "user":
            message = entry.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            return prompt_key(text_of(content)) if content else None
        index = data.find(_USER, line_end)
    return None


def _braced(line: bytes) -> bool:
    stripped = line.strip()
    return stripped[:1] == b"{" and stripped[-1:] == b"}"


def _timestamp_at(data: bytes, index: int) -> str | None:
    if index < 0:
        return None
    start = index + len(_TIMESTAMP)
    end = data.find(b'"', start, start + 64)
    return data[start:end].decode("ascii", "replace") if end > start else None


def _cwd(data: bytes) -> str | None:
    """The working directory named by the first line that has one (parsed, for its escapes)."""
    index = data.find(_CWD)
    if index < 0:
        return None
    line_start = data.rfind(b"\n", 0, index) + 1
    line_end = data.find(b"\n", index)
    try:
        entry = orjson.loads(data[line_start : line_end if line_end >= 0 else len(data)])
    except orjson.JSONDecodeError:
        return None
    cwd = entry.get("cwd") if isinstance(entry, dict) else None
    return cwd if isinstance(cwd, str) and cwd else None
