"""The root Typer app `claude-api`: one sub-app per noun."""

from __future__ import annotations

import logging

import typer

from claude_api.client.db import db_app
from claude_api.client.run import task_run
from claude_api.client.server_commands import schema, serve

app = typer.Typer(
    name="claude-api",
    help="Usage analytics for AI agents and skills.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.command("run")(task_run)
app.command("serve")(serve)
app.command("schema")(schema)


@app.callback()
def main_callback(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point of the `claude-api` console script."""
    app()
