"""The root Typer app `claude-api`: one sub-app per noun."""

from __future__ import annotations

import logging

import typer

from claude_api.client.agents import agents_app
from claude_api.client.alerts import alerts_app
from claude_api.client.analytics import analytics_app
from claude_api.client.budgets import budgets_app
from claude_api.client.db import db_app
from claude_api.client.demo import demo
from claude_api.client.hook import hook_app
from claude_api.client.importer import transcripts_import
from claude_api.client.keys import keys_app
from claude_api.client.login import login, logout
from claude_api.client.run import task_run
from claude_api.client.server_commands import schema, serve
from claude_api.client.skills import skills_app
from claude_api.client.spool_commands import spool_app
from claude_api.client.tasks import tasks_app

app = typer.Typer(
    name="claude-api",
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
app.add_typer(agents_app, name="agents")
app.add_typer(alerts_app, name="alerts")
app.add_typer(skills_app, name="skills")
app.add_typer(analytics_app, name="analytics")
app.add_typer(budgets_app, name="budgets")
app.add_typer(db_app, name="db")
app.add_typer(hook_app, name="hook")
app.add_typer(keys_app, name="keys")
app.add_typer(spool_app, name="spool")
app.add_typer(tasks_app, name="tasks")
app.command("import")(transcripts_import)
app.command("run")(task_run)
app.command("serve")(serve)
app.command("schema")(schema)
app.command("demo")(demo)
app.command("login")(login)
app.command("logout")(logout)


@app.callback()
def main_callback(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point of the `claude-api` console script."""
    app()
