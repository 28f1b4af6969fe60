"""Claude Code hooks: what a hook's JSON tells about a session, and importing that session.

Hooks carry no tokens, so every hook imports its session's transcripts incrementally (the same
import, the same event ids) and adds what only the hook knows: a tool's result before the
transcript shows it (PostToolUse / PostToolUseFailure), a background subagent's stop
(SubagentStop), the session's end (SessionEnd: everything still open is finished), the agent a
session runs as (`agent_type` without `agent_id`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from claude_api.importer.discovery import AGENT_PREFIX, SUFFIX, TranscriptFile, session_of
from claude_api.importer.session import HookReport, import_session, session_lock
from claude_api.importer.state import StateStore
from claude_api.models.task_sessions import registered_names
from claude_api.tracking import Tracker

logger = logging.getLogger(__name__)

HOOK_SOURCE = "claude-code-hook"
TRACKED_TOOLS = frozenset({"Agent", "Task", "Skill"})
SESSION_END = "SessionEnd"


@dataclass
class HookOutcome:
    """What one hook call did."""

    event: str
    session_id: str | None
    events: int = 0
    skipped: str | None = None  # why nothing was imported, if so
    busy: bool = False  # another process held the session past the lock's timeout


def iso(moment: datetime) -> str:
    """A UTC time written the way Claude Code writes transcript timestamps (they compare as
    text)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def report_from_payload(payload: Mapping[str, Any], now: datetime) -> HookReport:
    """What the hook's JSON adds to the transcripts."""
    report = HookReport()
    event = payload.get("hook_event_name")
    agent_id = _string(payload.get("agent_id"))
    agent_type = _string(payload.get("agent_type"))
    if agent_type and not agent_id:
        report.agent = agent_type
    at = iso(now)
    if event in ("PostToolUse", "PostToolUseFailure"):
        tool = payload.get("tool_name")
        tool_use_id = _string(payload.get("tool_use_id"))
        if tool in TRACKED_TOOLS and tool_use_id:
            duration = payload.get("duration_ms")
            report.results[tool_use_id] = {
                "at": at,
                "tool": tool,
                "input": payload.get("tool_input")
                if isinstance(payload.get("tool_input"), dict)
                else {},
                "response": payload.get("tool_response"),
                "duration_ms": duration if isinstance(duration, int | float) else None,
                "failed": event == "PostToolUseFailure",
                "error": _string(payload.get("error")),
                "thread": agent_id or "",
            }
    elif event == "SubagentStop" and agent_id:
        report.stops[agent_id] = at
    return report


def handle_hook(
    payload: Mapping[str, Any],
    *,
    engine: Engine,
    tracker: Tracker,
    now: datetime | None = None,
    lock_timeout: float = 2.0,
) -> HookOutcome:
    """Import the session the hook is about, with what the hook adds; store synchronously.

    Raises what the store raises (TrackingError, database errors): the caller decides that a
    hook never fails the session.
    """
    event = str(payload.get("hook_event_name") or "")
    session_id = _string(payload.get("session_id"))
    outcome = HookOutcome(event=event, session_id=session_id)
    transcript = _string(payload.get("transcript_path"))
    if not transcript:
        outcome.skipped = "no transcript_path"
        return outcome
    main_path = Path(transcript).expanduser()
    session_id = session_id or main_path.stem
    store = StateStore(engine)
    rows = store.load(session_ids=[session_id])
    known = {path: row.session_id for path, row in rows.items() if row.agent_id is not None}
    session, skipped = session_of(main_path, known_sessions=known)
    for transcript in skipped:
        logger.warning("transcript %s skipped: %s", transcript.path, transcript.reason)
    _add_agent_transcript(session.agents, payload.get("agent_transcript_path"))
    names = registered_names(engine, [session.session_id]).get(session.session_id)
    report = report_from_payload(payload, now or datetime.now(UTC))
    with session_lock(session, lock_timeout) as locked:
        if not locked:
            outcome.skipped = "the session is being imported by another process"
            outcome.busy = True
            return outcome
        result = import_session(
            session,
            list(rows.values()),
            source=HOOK_SOURCE,
            ended=event == SESSION_END,
            stats=Counter(),
            hook=report,
            names=names,
        )
        if result.events:
            tracker.record(result.events)
        store.save(result.rows)
    outcome.events = len(result.events)
    return outcome


def _add_agent_transcript(agents: dict[str, TranscriptFile], path_value: Any) -> None:
    path_text = _string(path_value)
    if path_text is None:
        return
    path = Path(path_text).expanduser()
    name = path.name
    if not (name.startswith(AGENT_PREFIX) and name.endswith(SUFFIX)):
        return
    agent_id = name[len(AGENT_PREFIX) : -len(SUFFIX)]
    if agent_id in agents:
        return
    try:
        stat = path.stat()
    except OSError:
        return
    agents[agent_id] = TranscriptFile(path, stat.st_size, stat.st_mtime_ns, stat.st_ino, agent_id)


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
