"""`claude-api run`: run a task with Claude Code, record its agents and skills, show the result."""

from __future__ import annotations

import logging

import pluggy
import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from claude_api.client import output
from claude_api.client.budgets import task_refusal
from claude_api.config import Settings
from claude_api.executor import TaskResult, run_task
from claude_api.executor.task_session import InvalidTask, TaskIdTaken
from claude_api.plugins.http_sink import SINK_NAME
from claude_api.plugins.manager import get_plugin_manager
from claude_api.producers import open_producer, sink_of
from claude_api.tracking import Tracker

logger = logging.getLogger(__name__)

TRACKER_CLOSE_TIMEOUT = 30.0  # seconds to finish storing the run's events before exiting


def task_run(
    prompt: str = typer.Argument(..., help="What Claude Code should do."),
    agent: str | None = typer.Option(
        None, "--agent", help="The agent that runs the task (default: Claude Code's own)."
    ),
    project: str | None = typer.Option(None, "--project", help="Project id to record."),
    task_id: str | None = typer.Option(
        None,
        "--task-id",
        help="Task id to record: a UUID, which Claude Code runs the task's session as, so that "
        "an import or hook of the session records the same task (default: a new UUID).",
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.0, help="Stop the run after this many seconds."
    ),
    max_cost: float | None = typer.Option(
        None,
        "--max-cost",
        help="Stop the run once what it streamed costs more than this many USD (it fails, "
        "keeping what it spent).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run a task with Claude Code and record every agent and skill it uses.

    The task is one Claude Code session: `claude-api import` and `claude-api hook` record the
    same session as the same task, never twice. Exits 0 when the task completed, 1 when it
    failed, 2 when it was refused before running (a task id that is not a UUID, or has run, or
    a spent deny budget on its agent, its project or everything: see `claude-api budgets`).

    Example: claude-api run "Review src/ and fix lint" --agent code-reviewer --timeout 600
    """
    settings = Settings()
    tracker, engine = open_tracker(settings)  # a new database is made (and migrated) first
    try:
        refusal = task_refusal(settings, agent=agent, project=project)
        if refusal is not None:
            output.error(f"{refusal}; nothing was run")
            raise typer.Exit(code=2)
        result = run_task(
            prompt,
            tracker=tracker,
            agent=agent,
            project_id=project,
            task_id=task_id,
            timeout=timeout,
            settings=settings,
            registry=engine,
            max_cost=max_cost,
        )
    except (InvalidTask, TaskIdTaken) as refused:
        output.error(f"{refused}; nothing was run")
        raise typer.Exit(code=2) from None
    finally:
        if not tracker.close(TRACKER_CLOSE_TIMEOUT):
            logger.error("gave up waiting for the usage events to be stored; some may be lost")
        if engine is not None:
            engine.dispose()
    if json_output:
        output.print_json(result.to_dict())
    else:
        output.stdout.print(_summary(result))
        if result.result:
            output.stdout.print(Text(result.result), soft_wrap=True)
    if not result.ok:
        output.error(result.error or "the task failed")
        raise typer.Exit(code=1)


def open_tracker(settings: Settings) -> tuple[Tracker, Engine | None]:
    """A tracker on the configured database, or in team mode one that sends to the server
    (spooling what cannot go now) with the task sessions registry in the local state file.
    When the database cannot be opened or migrated, one that only feeds third-party plugins
    (or, in team mode, the server without the registry), so that the task still runs (the
    problem is logged)."""
    try:
        producer = open_producer(settings)
    except Exception as error:
        if settings.url:
            logger.error("the local state database cannot be opened: %s", error)
            manager = _plugin_manager()
            manager.register(sink_of(settings), name=SINK_NAME)
            tracker = Tracker(manager, store=SINK_NAME, queue_size=settings.tracking_queue_size)
            return tracker, None
        logger.error("usage will not be recorded: the database cannot be opened: %s", error)
        return Tracker(_plugin_manager(), store=None, queue_size=settings.tracking_queue_size), None
    producer.deliver_spool()
    return producer.tracker, producer.engine


def _plugin_manager() -> pluggy.PluginManager:
    try:
        return get_plugin_manager()
    except Exception:
        logger.exception("third-party usage plugins failed to load; running without them")
        return get_plugin_manager(load_entrypoints=False)


def _summary(result: TaskResult) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    status_style = "green" if result.ok else "red"
    rows = [
        ("task", Text(result.task_id)),
        ("status", Text(result.status.value, style=status_style)),
        ("agent", Text(result.agent)),
        ("model", Text(result.model or "-")),
        ("duration", Text(f"{result.duration_seconds:.1f}s")),
        ("cost", Text("-" if result.cost_usd is None else f"${result.cost_usd:.4f}")),
        ("session", Text(result.session_id or "-")),
        ("exit code", Text("-" if result.exit_code is None else str(result.exit_code))),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table
