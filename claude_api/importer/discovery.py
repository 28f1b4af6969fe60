"""Find Claude Code transcripts and group them by session.

Layout (`$CLAUDE_CONFIG_DIR/projects`, else `~/.claude/projects` and `~/.config/claude/projects`):
`<project>/<session>.jsonl` is a session's main transcript; its subagents' transcripts are
`<project>/<session>/subagents/[...]/agent-<id>.jsonl` (Claude Code 2.1.50 on) or, in the older
flat layout, `<project>/agent-<id>.jsonl`, whose session only its lines name (`sessionId`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

AGENT_PREFIX = "agent-"
SUFFIX = ".jsonl"
SUBAGENTS_DIR = "subagents"
_PEEK_BYTES = 64 * 1024
_SESSION_ID = b'"sessionId":"'


@dataclass(frozen=True)
class TranscriptFile:
    """One transcript and what `stat` says of it; `agent_id` is None for a main transcript."""

    path: Path
    size: int
    mtime_ns: int
    inode: int
    agent_id: str | None = None

    @property
    def meta_path(self) -> Path:
        """The sidecar `agent-<id>.meta.json` of a subagent transcript."""
        return self.path.with_name(f"{AGENT_PREFIX}{self.agent_id}.meta.json")

    def read_meta(self) -> dict[str, object]:
        """The sidecar's keys (agentType, toolUseId, parentAgentId, ...), or {} without one."""
        if self.agent_id is None:
            return {}
        try:
            meta = orjson.loads(self.meta_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return meta if isinstance(meta, dict) else {}


@dataclass
class SessionFiles:
    """A session's transcripts: the main one (None when it is gone) and its subagents'."""

    session_id: str
    main_path: Path
    main: TranscriptFile | None = None
    agents: dict[str, TranscriptFile] = field(default_factory=dict)

    @property
    def files(self) -> list[TranscriptFile]:
        return ([self.main] if self.main else []) + list(self.agents.values())


def default_roots() -> list[Path]:
    """Where Claude Code keeps transcripts: `$CLAUDE_CONFIG_DIR/projects` (several directories
    may be given, comma-separated), else `~/.claude/projects` and `~/.config/claude/projects`."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
    if configured:
        bases = [Path(part.strip()).expanduser() for part in configured.split(",") if part.strip()]
    else:
        home = Path.home()
        bases = [home / ".claude", home / ".config" / "claude"]
    return [base / "projects" for base in bases if (base / "projects").is_dir()]


def discover(
    paths: Sequence[Path], *, known_sessions: Mapping[str, str] | None = None
) -> list[SessionFiles]:
    """The sessions of the transcripts in or under `paths` (files or directories).

    A main transcript given as a file brings its subagents' transcripts along. `known_sessions`
    maps a flat-layout subagent transcript's path to its session id, to spare reading it.
    """
    known = known_sessions or {}
    sessions: dict[Path, SessionFiles] = {}
    for path in paths:
        path = path.expanduser()
        if path.is_file():
            found = _classify(path, known)
            if found is None:
                continue
            _, main_path, _ = found
            wanted = {main_path}
            candidates = _walk(main_path.parent, max_depth=0)
            candidates = [*candidates, *_walk(main_path.with_suffix(""), max_depth=None), path]
        else:
            wanted = None
            candidates = list(_walk(path, max_depth=None))
        for candidate in dict.fromkeys(candidates):
            _add(sessions, candidate, known, wanted)
    return [sessions[key] for key in sorted(sessions, key=str)]


def session_of(main_path: Path, *, known_sessions: Mapping[str, str] | None = None) -> SessionFiles:
    """The session whose main transcript is (or would be) `main_path`, with its subagents."""
    found = discover([main_path], known_sessions=known_sessions) if main_path.exists() else []
    if found:
        return found[0]
    session = SessionFiles(session_id=main_path.stem, main_path=main_path)
    for candidate in _walk(main_path.with_suffix(""), max_depth=None):
        _add({main_path: session}, candidate, known_sessions or {}, {main_path})
    return session


def _add(
    sessions: dict[Path, SessionFiles],
    path: Path,
    known: Mapping[str, str],
    wanted: set[Path] | None,
) -> None:
    found = _classify(path, known)
    if found is None:
        return
    session_id, main_path, agent_id = found
    if wanted is not None and main_path not in wanted:
        return
    try:
        stat = path.stat()
    except OSError:
        return
    file = TranscriptFile(path, stat.st_size, stat.st_mtime_ns, stat.st_ino, agent_id)
    session = sessions.get(main_path)
    if session is None:
        session = sessions[main_path] = SessionFiles(session_id=session_id, main_path=main_path)
    if agent_id is None:
        session.main = file
    else:
        session.agents[agent_id] = file


def _classify(path: Path, known: Mapping[str, str]) -> tuple[str, Path, str | None] | None:
    """(session id, main transcript path, agent id or None) of a transcript path."""
    name = path.name
    if not name.endswith(SUFFIX):
        return None
    if not name.startswith(AGENT_PREFIX):
        return path.stem, path, None
    agent_id = name[len(AGENT_PREFIX) : -len(SUFFIX)]
    parts = path.parts
    if SUBAGENTS_DIR in parts[:-1]:
        index = len(parts) - 2 - parts[:-1][::-1].index(SUBAGENTS_DIR)
        if index >= 1:
            session_dir = Path(*parts[:index])
            return session_dir.name, session_dir.with_name(session_dir.name + SUFFIX), agent_id
    session_id = known.get(str(path)) or _peek_session_id(path)
    if session_id is None:
        return None
    return session_id, path.with_name(session_id + SUFFIX), agent_id


def _peek_session_id(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            head = file.read(_PEEK_BYTES)
    except OSError:
        return None
    index = head.find(_SESSION_ID)
    if index < 0:
        return None
    start = index + len(_SESSION_ID)
    end = head.find(b'"', start, start + 256)
    return head[start:end].decode("utf-8", "replace") if end > start else None


def _walk(root: Path, *, max_depth: int | None) -> Iterator[Path]:
    """The `.jsonl` files in `root`, and below it down to `max_depth` levels (None: all)."""
    yield from _scan(root, 0, max_depth)


def _scan(directory: Path, depth: int, max_depth: int | None) -> Iterable[Path]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in sorted(entries, key=lambda entry: entry.name):
        try:
            if entry.is_dir(follow_symlinks=False):
                if max_depth is None or depth < max_depth:
                    yield from _scan(Path(entry.path), depth + 1, max_depth)
            elif entry.name.endswith(SUFFIX) and entry.is_file():
                yield Path(entry.path)
        except OSError:
            continue
