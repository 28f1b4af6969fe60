"""What the importer remembers between runs, one `import_files` row per transcript.

A row holds how far its file was read (`offset`, with `size`, `mtime_ns` and `inode` to tell an
unchanged, grown or replaced file) and, as JSON, the file's thread: spend read but not yet
attributed, the invocation that claims it, the last responses counted (a response whose lines
straddle two imports is counted once). The main transcript's row also holds the session: its
open invocations, its main-thread segment and what hooks reported.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from claude_api.events import Kind
from claude_api.importer.tally import Tally
from claude_api.models.db import write_engine
from claude_api.models.tables import ImportFile
from claude_api.spend import Request

STATE_VERSION = 1
RECENT_RESPONSES = 8  # responses per file remembered for lines that straddle two imports

_REQUEST_FIELDS = (
    "model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
    "cache_creation_1h_tokens",
)  # fmt: skip


@dataclass
class Invocation:
    """An agent or skill call seen in a transcript and not yet written as finished."""

    key: str  # the tool use id; `command:<uuid>` for a typed /skill
    kind: Kind
    name: str
    thread: str  # the transcript that made the call: "" main, else the subagent's id
    at: str
    parent: str | None = None  # event id (hex) of the invocation it ran in, once known
    background: bool = False
    typed: bool = False
    status: str | None = None  # "completed" / "failed" once known
    error: str | None = None
    end_at: str | None = None
    duration_ms: float | None = None
    agent_id: str | None = None  # the subagent (or forked skill) transcript it ran in
    window: Tally | None = None  # a skill's own responses (`attributionSkill`)
    window_open: bool = False
    window_last: str | None = None
    started: bool = False  # its running start was written
    shown: list[int] | None = None  # the spend so far its last running event showed
    prompt: str | None = None  # `prompt_key` of an Agent call's prompt

    def dump(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _INVOCATION_FIELDS}
        data["kind"] = self.kind.value
        data["window"] = self.window.dump() if self.window is not None else None
        return data

    @classmethod
    def load(cls, data: dict[str, Any]) -> Invocation:
        values = {name: data.get(name) for name in _INVOCATION_FIELDS}
        values["kind"] = Kind(data["kind"])
        for flag in ("background", "typed", "window_open", "started"):
            values[flag] = bool(values[flag])
        window = data.get("window")
        values["window"] = Tally.load(window) if window is not None else None
        return cls(**values)


_INVOCATION_FIELDS = (
    "key", "kind", "name", "thread", "at", "parent", "background", "typed", "status", "error",
    "end_at", "duration_ms", "agent_id", "window", "window_open", "window_last", "started",
    "prompt", "shown",
)  # fmt: skip


@dataclass
class ThreadState:
    """One transcript's conversation: the main thread, or one subagent's."""

    agent_id: str | None = None
    unclaimed: Tally = field(default_factory=Tally)  # spend no invocation has taken yet
    owner: str | None = None  # key of the invocation whose spend this transcript is
    owner_name: str | None = None
    owner_kind: str | None = None
    owner_parent: str | None = None
    claims: int = 0  # how often the owner (then its continuations) took the spend
    recent: dict[str, Request] = field(default_factory=dict)
    hint: str | None = None  # `attributionAgent` seen on its responses
    first_at: str | None = None
    last_at: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None  # `prompt_key` of its first prompt (a subagent's: its call's)

    def remember(self, key: str, request: Request) -> None:
        """Keep `request` among the last responses counted (the oldest is forgotten)."""
        self.recent.pop(key, None)
        self.recent[key] = request
        while len(self.recent) > RECENT_RESPONSES:
            del self.recent[next(iter(self.recent))]

    def dump(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "unclaimed": self.unclaimed.dump(),
            "owner": self.owner,
            "owner_name": self.owner_name,
            "owner_kind": self.owner_kind,
            "owner_parent": self.owner_parent,
            "claims": self.claims,
            "recent": [
                [key, *(getattr(request, name) for name in _REQUEST_FIELDS)]
                for key, request in self.recent.items()
            ],
            "hint": self.hint,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "meta": self.meta,
            "prompt": self.prompt,
        }

    @classmethod
    def load(cls, data: dict[str, Any] | None, agent_id: str | None) -> ThreadState:
        if not data:
            return cls(agent_id=agent_id)
        return cls(
            agent_id=agent_id,
            unclaimed=Tally.load(data.get("unclaimed")),
            owner=data.get("owner"),
            owner_name=data.get("owner_name"),
            owner_kind=data.get("owner_kind"),
            owner_parent=data.get("owner_parent"),
            claims=int(data.get("claims") or 0),
            recent={
                item[0]: Request(**dict(zip(_REQUEST_FIELDS, item[1:], strict=True)))
                for item in data.get("recent") or []
            },
            hint=data.get("hint"),
            first_at=data.get("first_at"),
            last_at=data.get("last_at"),
            meta=data.get("meta") or {},
            prompt=data.get("prompt"),
        )


@dataclass
class SessionState:
    """A session's progress, kept with its main transcript."""

    cwd: str | None = None
    agent: str | None = None  # the agent the session ran as (`--agent`), when known
    segment: int = 0  # the main thread's current invocation: 0, then one per resumption
    segment_open: bool = False  # main-thread lines were read since it was last finished
    segment_started: bool = False
    segment_shown: list[int] | None = None  # the spend so far its last running event showed
    segment_first_at: str | None = None
    closed: bool = False  # the session was over when last imported
    invocations: dict[str, Invocation] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)  # keys finished while the session is open
    seen: set[str] = field(default_factory=set)  # response keys counted, while it is open
    hook_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    hook_stops: dict[str, str] = field(default_factory=dict)  # agent id -> SubagentStop time

    @property
    def main_written(self) -> bool:
        """Whether a row of the main thread was written: its agent name stays what it was
        (a row's name never changes)."""
        return self.segment_started or self.segment > 0

    def dump(self) -> dict[str, Any]:
        return {
            "cwd": self.cwd,
            "agent": self.agent,
            "segment": self.segment,
            "segment_open": self.segment_open,
            "segment_started": self.segment_started,
            "segment_shown": self.segment_shown,
            "segment_first_at": self.segment_first_at,
            "closed": self.closed,
            "invocations": [invocation.dump() for invocation in self.invocations.values()],
            "finished": sorted(self.finished),
            "seen": sorted(self.seen),
            "hook_results": self.hook_results,
            "hook_stops": self.hook_stops,
        }

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> SessionState:
        if not data:
            return cls()
        invocations = [Invocation.load(item) for item in data.get("invocations") or []]
        return cls(
            cwd=data.get("cwd"),
            agent=data.get("agent"),
            segment=int(data.get("segment") or 0),
            segment_open=bool(data.get("segment_open")),
            segment_started=bool(data.get("segment_started")),
            segment_shown=data.get("segment_shown"),
            segment_first_at=data.get("segment_first_at"),
            closed=bool(data.get("closed")),
            invocations={invocation.key: invocation for invocation in invocations},
            finished=set(data.get("finished") or ()),
            seen=set(data.get("seen") or ()),
            hook_results=data.get("hook_results") or {},
            hook_stops=data.get("hook_stops") or {},
        )


@dataclass
class FileRow:
    """One `import_files` row: a transcript's read position and its JSON state."""

    path: str
    session_id: str
    agent_id: str | None
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    offset: int = 0
    lines: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def same_file(self, size: int, mtime_ns: int, inode: int) -> bool:
        """Whether the file is exactly as this row last saw it."""
        return (self.size, self.mtime_ns, self.inode) == (size, mtime_ns, inode)

    @property
    def last_line_at(self) -> str | None:
        """The time of the newest dated line read from the file."""
        thread = self.state.get("thread")
        return thread.get("last_at") if isinstance(thread, dict) else None


def latest_line_at(times: Iterable[str | None]) -> datetime | None:
    """The latest of some transcript line times (ISO 8601, as Claude Code writes them; one
    without an offset is taken as UTC, one that does not parse is left out)."""
    latest = None
    for text in times:
        if not text:
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if latest is None or moment > latest:
            latest = moment
    return latest


class StateStore:
    """Loads and saves `import_files` rows (not usage rows: those go through the tracker)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, *, session_ids: Collection[str] | None = None) -> dict[str, FileRow]:
        """Rows by path: every row, or those of the given sessions."""
        table = ImportFile.__table__
        query = sa.select(table)
        if session_ids is not None:
            query = query.where(table.c.session_id.in_(list(session_ids)))
        with self.engine.connect() as connection:
            result = connection.execute(query)
            return {
                row.path: FileRow(
                    path=row.path,
                    session_id=row.session_id,
                    agent_id=row.agent_id,
                    size=row.size,
                    mtime_ns=row.mtime_ns,
                    inode=row.inode,
                    offset=row.offset,
                    lines=row.lines,
                    state=orjson.loads(row.state) if row.state else {},
                )
                for row in result
            }

    def save(self, rows: Iterable[FileRow]) -> None:
        """Insert or update `rows`, by path, in one transaction."""
        now = datetime.now(UTC)
        values = [
            {
                "path": row.path,
                "session_id": row.session_id,
                "agent_id": row.agent_id,
                "size": row.size,
                "mtime_ns": row.mtime_ns,
                "inode": row.inode,
                "offset": row.offset,
                "lines": row.lines,
                "state": orjson.dumps(
                    {"v": STATE_VERSION, **row.state}, option=orjson.OPT_NON_STR_KEYS
                ).decode(),
                "imported_at": now,
            }
            for row in rows
        ]
        if not values:
            return
        table = ImportFile.__table__
        engine = write_engine(self.engine)
        insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(table)
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.path],
            set_={name: insert.excluded[name] for name in values[0] if name != "path"},
        )
        with engine.begin() as connection:
            connection.execute(statement, values)
