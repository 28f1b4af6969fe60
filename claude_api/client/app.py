"""The root Typer app `claude-api`: one sub-app per noun, each imported only when it runs.

Start-up time is paid on every call (Claude Code runs `claude-api hook` on every subagent and
skill call): `claude-api --help` imports no command module, `claude-api agents stats` only the
agents commands and what they use.
"""

from __future__ import annotations

import gc
import logging
from importlib import import_module
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# Command -> (module, attribute, the one-line help the root's --help lists). The attribute is a
# Typer sub-app or a command function; the help is checked against the command's own by a test.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "import": (
        "claude_api.client.importer",
        "transcripts_import",
        "Import Claude Code session transcripts: each session a task, its main thread, "
        "subagents and skills with their own tokens and cost.",
    ),
    "run": (
        "claude_api.client.run",
        "task_run",
        "Run a task with Claude Code and record every agent and skill it uses.",
    ),
    "serve": (
        "claude_api.client.server_commands",
        "serve",
        "Start the API server: GraphQL and GraphiQL at /graphql, REST under /v1, /healthz.",
    ),
    "schema": (
        "claude_api.client.server_commands",
        "schema",
        "Print the GraphQL schema (SDL), as committed in schema.graphql.",
    ),
    "demo": (
        "claude_api.client.demo",
        "demo",
        "Fill the database (CLAUDE_API_DATABASE_URL) with synthetic Claude Code tasks.",
    ),
    "models": (
        "claude_api.client.breakdowns",
        "models_list",
        "Show usage per model, most costly first, with a totals row.",
    ),
    "projects": (
        "claude_api.client.breakdowns",
        "projects_list",
        "Show usage per project, most costly first, with a totals row.",
    ),
    "login": (
        "claude_api.client.login",
        "login",
        "Report this machine's agents and skills to a team's server.",
    ),
    "logout": (
        "claude_api.client.login",
        "logout",
        "Forget the server of `claude-api login`: the producers write the local database again.",
    ),
    "agents": (
        "claude_api.client.usage_commands",
        "agents_app",
        "Agents: their statistics, leaderboards and history.",
    ),
    "alerts": (
        "claude_api.client.alerts",
        "alerts_app",
        "Alert rules: a failure rate, a cost or a p95 duration above a threshold over a "
        "rolling window.",
    ),
    "skills": (
        "claude_api.client.usage_commands",
        "skills_app",
        "Skills: their statistics, leaderboards and history.",
    ),
    "tasks": (
        "claude_api.client.tasks",
        "tasks_app",
        "Tasks: which agents and skills each ran, and what each cost.",
    ),
    "analytics": (
        "claude_api.client.analytics",
        "analytics_app",
        "Reports over a day, week or month, exports of every invocation, and purges of old ones.",
    ),
    "budgets": (
        "claude_api.client.budgets",
        "budgets_app",
        "Budgets: what an agent, a skill, a project or everything may spend per day, week or "
        "month.",
    ),
    "db": ("claude_api.client.db", "db_app", "Manage the analytics database."),
    "hook": (
        "claude_api.client.hook",
        "hook_app",
        "Claude Code hook command: reads the hook's JSON on stdin and records the agents and "
        "skills of the session.",
    ),
    "keys": (
        "claude_api.client.keys",
        "keys_app",
        "API keys: bearer tokens that let clients use the server.",
    ),
    "spool": (
        "claude_api.client.spool_commands",
        "spool_app",
        "Events kept on this machine while the team's server could not take them.",
    ),
}


def load_command(name: str) -> Any:
    """The Click command `name`, its module imported now."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(import_module(module), attribute)
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    holder.callback()(lambda: None)  # a callback keeps the holder a group, whatever it holds
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    group = typer.main.get_command(holder)
    return reflowed(group.commands[name])  # type: ignore[attr-defined]


def reflowed(command: Any) -> Any:
    """`command` and its subcommands with each paragraph of their help on one line. A docstring
    wraps its paragraphs at the source's width; Typer keeps those breaks after the first
    paragraph, so at the terminal's own width the lines came out ragged."""
    if command.help:
        paragraphs = command.help.split("\n\n")
        command.help = "\n\n".join(" ".join(part.split()) for part in paragraphs)
    for subcommand in getattr(command, "commands", {}).values():
        reflowed(subcommand)
    return command


class LazyGroup(TyperGroup):
    """The root group: a command's module is imported when that command runs (or shows its own
    help); the root's --help lists every command from COMMANDS without importing any."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        # Only listed here: resolve_command loads the real command before it runs.
        return TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.add_command(load_command(args[0]), args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="claude-api",
    cls=LazyGroup,
    help="Usage analytics for AI agents and skills: which are used, how often they succeed, "
    "what they cost.\n\n"
    "The agents, skills and analytics commands ask the server at --url (or CLAUDE_API_URL, "
    "with CLAUDE_API_KEY as a bearer token), else the local database "
    "(CLAUDE_API_DATABASE_URL). They print tables, or JSON with --json.\n\n"
    "Example: claude-api agents leaderboard --by success-rate --since 2026-05-01",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main_callback(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point of the `claude-api` console script."""
    try:
        app()
    except Exception as error:
        # A CLAUDE_API_* variable set to what it cannot be: said in a sentence, not a traceback.
        from pydantic import ValidationError

        from claude_api.client import output
        from claude_api.config import Settings, invalid_settings

        if not isinstance(error, ValidationError) or error.title != Settings.__name__:
            raise
        output.error(invalid_settings(error))
        raise SystemExit(1) from None
    finally:
        # The command has closed what it opened. Left to the collector, the exit would walk the
        # libraries' hundred thousand objects (modules, classes, the schema) several times over
        # while tearing them down: a fifth of an in-process command's CPU, to free memory that
        # the process's end frees anyway.
        gc.freeze()
