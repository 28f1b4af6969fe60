"""The Claude Code session a task runs as: one session is one task, whoever records it.

The task id is the session's id, chosen here and given to Claude Code (`--session-id`), and the
task's rows carry the event ids the transcript import and the hook derive for the same session
and calls. The session is registered with the names the executor records it under, so the import
and the hook use them too: whichever of the three sees a session first, it is recorded once.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.errors import ClaudeApiError
from claude_api.events import MAX_NAME_LENGTH
from claude_api.importer.settlement import main_key, session_namespace
from claude_api.models.queries.tasks import task_projects
from claude_api.models.task_sessions import SessionNames, SessionTaken, register_session

logger = logging.getLogger(__name__)

TASK_ID_HELP = (
    "the task id is the Claude Code session id (claude --session-id), so that the run, the "
    "import of its transcripts and its hooks record one task: give a UUID, or leave it out "
    "for a new one"
)


class InvalidTask(ValueError):
    """A task's input that Claude Code cannot be run with; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TaskIdTaken(ClaudeApiError):
    """The task id names a session that has run before: a session runs once. `projects` are
    those its recorded invocations belong to (None: without a project)."""

    def __init__(self, task_id: str, projects: set[str | None]) -> None:
        super().__init__(
            f"task {task_id} has already run; a task id is the id of its Claude Code session, "
            "which runs once: leave task_id out to run a new task"
        )
        self.task_id = task_id
        self.projects = projects


def check_text(field: str, value: str | None, *, limit: int | None = MAX_NAME_LENGTH) -> None:
    """InvalidTask when `value` cannot be a command-line argument or a recorded name."""
    if value is None:
        return
    if "\x00" in value:
        # A process argument ends at NUL, and PostgreSQL cannot store one in text.
        raise InvalidTask(field, "must not contain NUL characters")
    if limit is not None and not 0 < len(value) <= limit:
        raise InvalidTask(field, f"must be 1 to {limit} characters")


def session_id_for(task_id: str | None) -> str:
    """The session a task runs as: the task id given (a UUID, in its canonical form), else a
    new one. InvalidTask when the task id is not a UUID."""
    if task_id is None:
        return str(uuid.uuid4())
    check_text("task_id", task_id)
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        raise InvalidTask("task_id", f"{task_id!r} is not a UUID; {TASK_ID_HELP}") from None


def main_event_id(session_id: str) -> uuid.UUID:
    """The event id of the task's own invocation: the session's main thread, as imported."""
    return uuid.uuid5(session_namespace(session_id), main_key(0))


def claim_session(engine: Engine, session_id: str, names: SessionNames) -> None:
    """Register the session before it runs; TaskIdTaken when it ran before (recorded by any
    producer, or registered by another run). When the database cannot be reached the task
    still runs, and the problem is logged."""
    try:
        with Session(engine) as session:
            projects = task_projects(session, task_id=session_id)
        if projects:
            raise TaskIdTaken(session_id, projects)
        register_session(engine, session_id, names)
    except SessionTaken as taken:
        projects = {taken.names.project_id} if taken.names is not None else set()
        raise TaskIdTaken(session_id, projects) from None
    except sa.exc.SQLAlchemyError as error:
        logger.error(
            "task %s: could not register its session (%s); an import of its transcripts will "
            "record it under its working directory and the agent it ran as",
            session_id,
            error,
        )
