"""The Claude Code sessions the executor ran as tasks, and the names it records each under.

The executor registers a session before Claude Code starts it; the transcript import and the
hook look the session up, so that all three record it under one project and one agent name
(the import alone would name the project after the working directory and the agent `main`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from claude_api.errors import ClaudeApiError
from claude_api.models.db import write_engine
from claude_api.models.tables import TaskSession

_LOOKUP_CHUNK = 500  # session ids per SELECT, under every database's parameter limit


@dataclass(frozen=True)
class SessionNames:
    """What a session's rows are recorded under: its main thread's agent and its project."""

    agent: str
    project_id: str | None


class SessionTaken(ClaudeApiError):
    """The session is registered already: a session runs, as one task, once."""

    def __init__(self, session_id: str, names: SessionNames | None) -> None:
        super().__init__(f"session {session_id} has already run as a task")
        self.session_id = session_id
        self.names = names


def register_session(
    engine: Engine, session_id: str, names: SessionNames, *, at: datetime | None = None
) -> None:
    """Record that the executor runs `session_id` under `names`; SessionTaken if it did before."""
    table = TaskSession.__table__
    row = {
        "session_id": session_id,
        "project_id": names.project_id,
        "agent_name": names.agent,
        "started_at": at or datetime.now(UTC),
    }
    try:
        with write_engine(engine).begin() as connection:
            connection.execute(sa.insert(table), row)
    except sa.exc.IntegrityError:
        names_before = registered_names(engine, [session_id]).get(session_id)
        raise SessionTaken(session_id, names_before) from None


def registered_names(engine: Engine, session_ids: Iterable[str]) -> dict[str, SessionNames]:
    """The names of those of `session_ids` the executor ran, by session id."""
    table = TaskSession.__table__
    wanted = list(dict.fromkeys(session_ids))
    found: dict[str, SessionNames] = {}
    with engine.connect() as connection:
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            query = sa.select(table.c.session_id, table.c.agent_name, table.c.project_id).where(
                table.c.session_id.in_(chunk)
            )
            for session_id, agent, project_id in connection.execute(query):
                found[session_id] = SessionNames(agent=agent, project_id=project_id)
    return found
