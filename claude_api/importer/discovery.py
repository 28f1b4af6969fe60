"""Find Claude Code transcripts and group them by session.

Layout (`$CLAUDE_CONFIG_DIR/projects`, else `~/.claude/projects` and `~/.config/claude/projects`):
`<project>/<session>.jsonl` is a session's main transcript; its subagents' transcripts are
`<project>/<session>/subagents/[...]/agent-<id>.jsonl` (Claude Code 2.1.50 on) or, in the older
flat layout, `<project>/agent-<id>.jsonl`, whose session only its lines name (`sessionId`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

AGENT_PREFIX = "agent-"
SUFFIX = ".jsonl"
SUBAGENTS_DIR = "subagents"
_PEEK_BYTES = 64 * 1024
_SESSION_ID = b'"sessionId":"'
# Claude Code's session ids are UUIDs; any id that is one plain file name component is taken.
_SAFE_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
UNSAFE_SESSION_ID = "its sessionId cannot name a session"
UNREADABLE = "cannot be read"
NO_SESSION_ID = f"no sessionId in its first {_PEEK_BYTES // 1024} KB"


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


@dataclass(frozen=True)
class SkippedTranscript:
    """A transcript (or directory) left out, and why."""

    path: Path
    reason: str


@dataclass
class Discovery:
    """The sessions found, and the transcripts that could not be read or named safely."""

    sessions: list[SessionFiles]
    skipped: list[SkippedTranscript]


def discover(
    paths: Sequence[Path], *, known_sessions: Mapping[str, str] | None = None
) -> Discovery:
    """The sessions of the transcripts in or under `paths` (files or directories).

    A main transcript given as a file brings its subagents' transcripts along. `known_sessions`
    maps a flat-layout subagent transcript's path to its session id, to spare reading it. A
    transcript that cannot be read, or whose session id is no safe file name, is skipped and
    named in `skipped`; the others are found all the same.
    """
    finder = _Finder(known_sessions or {})
    for path in paths:
        path = path.expanduser()
        if path.is_file():
            found = finder.classify(path)
            if found is None:
                continue
            _, main_path, _ = found
            wanted = {main_path}
            candidates = finder.walk(main_path.parent, max_depth=0)
            candidates = [*candidates, *finder.walk(main_path.with_suffix("")), path]
        else:
            wanted = None
            candidates = list(finder.walk(path))
        for candidate in dict.fromkeys(candidates):
            finder.add(candidate, wanted)
    sessions = finder.sessions
    skipped = list(dict.fromkeys(finder.skipped))
    return Discovery([sessions[key] for key in sorted(sessions, key=str)], skipped)


def session_of(
    main_path: Path, *, known_sessions: Mapping[str, str] | None = None
) -> tuple[SessionFiles, list[SkippedTranscript]]:
    """The session whose main transcript is (or would be) `main_path`, with its subagents, and
    the transcripts beside it that had to be skipped."""
    if main_path.exists():
        found = discover([main_path], known_sessions=known_sessions)
        if found.sessions:
            return found.sessions[0], found.skipped
    finder = _Finder(known_sessions or {})
    session = finder.sessions[main_path] = SessionFiles(main_path.stem, main_path)
    for candidate in finder.walk(main_path.with_suffix("")):
        finder.add(candidate, {main_path})
    return session, finder.skipped


def safe_session_id(value: str) -> bool:
    """Whether `value` can name a session's transcript file: one plain path component."""
    return bool(_SAFE_SESSION_ID.fullmatch(value)) and ".." not in value


class _Finder:
    """Classifies transcript paths into sessions, keeping what it had to skip."""

    def __init__(self, known: Mapping[str, str]) -> None:
        self.known = known
        self.sessions: dict[Path, SessionFiles] = {}
        self.skipped: list[SkippedTranscript] = []

    def add(self, path: Path, wanted: set[Path] | None) -> None:
        found = self.classify(path)
        if found is None:
            return
        session_id, main_path, agent_id = found
        if wanted is not None and main_path not in wanted:
            return
        try:
            stat = path.stat()
        except FileNotFoundError:
            return  # deleted since it was listed
        except OSError as error:
            self.skip(path, error)
            return
        file = TranscriptFile(path, stat.st_size, stat.st_mtime_ns, stat.st_ino, agent_id)
        session = self.sessions.get(main_path)
        if session is None:
            session = self.sessions[main_path] = SessionFiles(session_id, main_path)
        if agent_id is None:
            session.main = file
        else:
            session.agents[agent_id] = file

    def classify(self, path: Path) -> tuple[str, Path, str | None] | None:
        """(session id, main transcript path, agent id or None) of a transcript path; None
        when it is no transcript, or was skipped."""
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
        # The older flat layout: only the transcript's lines name its session.
        session_id = self.known.get(str(path))
        if session_id is None:
            try:
                head = _head(path)
            except FileNotFoundError:
                return None
            except OSError as error:
                self.skip(path, error)
                return None
            session_id = _session_id_in(head)
            if session_id is None:
                if b"\n" in head or len(head) == _PEEK_BYTES:
                    self.skipped.append(SkippedTranscript(path, NO_SESSION_ID))
                return None  # else its first line is still being written
        if not safe_session_id(session_id):
            self.skipped.append(
                SkippedTranscript(path, f"{UNSAFE_SESSION_ID}: {session_id[:80]!r}")
            )
            return None
        return session_id, path.with_name(session_id + SUFFIX), agent_id

    def walk(self, root: Path, *, max_depth: int | None = None) -> Iterator[Path]:
        """The `.jsonl` files in `root`, and below it down to `max_depth` levels (None: all)."""
        yield from self._scan(root, 0, max_depth)

    def _scan(self, directory: Path, depth: int, max_depth: int | None) -> Iterable[Path]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as error:
            self.skip(directory, error)
            return
        for entry in sorted(entries, key=lambda entry: entry.name):
            try:
                if entry.is_dir(follow_symlinks=False):
                    if max_depth is None or depth < max_depth:
                        yield from self._scan(Path(entry.path), depth + 1, max_depth)
                elif entry.name.endswith(SUFFIX) and entry.is_file():
                    yield Path(entry.path)
            except OSError as error:
                self.skip(Path(entry.path), error)

    def skip(self, path: Path, error: OSError) -> None:
        self.skipped.append(SkippedTranscript(path, unreadable(error)))


def unreadable(error: OSError) -> str:
    """Why a transcript could not be read, in a few words."""
    return f"{UNREADABLE}: {error.strerror or error}"


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(_PEEK_BYTES)


def _session_id_in(head: bytes) -> str | None:
    """The first `sessionId` in a transcript's first bytes, if any."""
    index = head.find(_SESSION_ID)
    if index < 0:
        return None
    start = index + len(_SESSION_ID)
    end = head.find(b'"', start, start + 256)
    return head[start : end if end >= 0 else start + 256].decode("utf-8", "replace")
