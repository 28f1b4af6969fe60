"""`claude-api keys`: make, list and revoke the API keys of the server, on its database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer
from sqlmodel import Session

from claude_api.client import output
from claude_api.client.output import Column
from claude_api.config import Settings
from claude_api.errors import NotFound
from claude_api.models.keys import KeyInfo, Scope, create_key, list_keys, revoke_key

keys_app = typer.Typer(
    help="API keys: bearer tokens that let clients use the server (on its database, "
    "CLAUDE_API_DATABASE_URL).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _day(value: str | None) -> str:
    """The UTC date of an instant: enough to tell keys apart, and it fits 80 columns."""
    return output.moment(value)[: len("YYYY-MM-DD")]


# The creation time is in --json: seven columns do not fit 80.
KEY_COLUMNS = [
    Column("id", "ID", no_wrap=True),
    Column("name", "Name"),
    Column("scope", "Scope"),
    Column("project_id", "Project"),
    Column("last_used_at", "Last used", _day, no_wrap=True),
    Column("revoked_at", "Revoked", _day, no_wrap=True),
]


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            help="read: queries; write: records events; admin: everything (keys, tasks).",
        ),
    ],
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            "--project-id",
            help="Bind the key to this project: it sees and records only that project.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="A note on whose key it is.", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API key and print it: it is shown once, and only its hash is stored.

    Clients send it as `Authorization: Bearer <key>` (the CLI: CLAUDE_API_KEY).

    Example: claude-api keys create --scope write --project web --name ci-runner
    """
    try:
        with _session() as session:
            key, info = create_key(session, scope=scope, project_id=project, name=name)
            session.commit()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if json_output:
        output.print_json({"key": key, **_row(info)})
        return
    output.print_line(key)
    output.info(
        f"API key {info.prefix} ({info.scope.value}"
        f"{f', project {info.project_id}' if info.project_id else ', every project'}) "
        "created. Store it now: it cannot be shown again."
    )


@keys_app.command("list")
def keys_list(json_output: JsonOption = False) -> None:
    """Show every API key, revoked ones included; never the keys themselves.

    Example: claude-api keys list
    """
    with _session() as session:
        keys = list_keys(session)
    rows = [_row(info) for info in keys]
    if json_output:
        output.print_json(rows)
    elif rows:
        output.print_table(rows, KEY_COLUMNS)
    else:
        output.info("no API keys yet: claude-api keys create --scope read")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[
        str,
        typer.Argument(metavar="KEY_ID", help="The key's ID as `keys list` shows it (cc_...)."),
    ],
) -> None:
    """Revoke an API key: the server refuses it within seconds (CLAUDE_API_AUTH_CACHE_SECONDS).

    Example: claude-api keys revoke cc_3f2a9c0d1e4b
    """
    try:
        with _session() as session:
            info = revoke_key(session, key_id)
            session.commit()
    except NotFound as error:
        output.error(str(error))
        raise typer.Exit(1) from None
    output.info(f"API key {info.prefix} is revoked")


@contextmanager
def _session() -> Iterator[Session]:
    """A session on the database, migrated first; exits 1 if it cannot be opened."""
    from sqlalchemy.engine import make_url

    from claude_api.models.db import make_engine, upgrade, write_engine

    settings = Settings()
    engine = None
    try:
        engine = make_engine(settings.database_url)
        upgrade(engine)
    except Exception as error:
        if engine is not None:
            engine.dispose()
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        output.error(f"cannot open the database {where} ({reason}); check CLAUDE_API_DATABASE_URL")
        raise typer.Exit(1) from None
    try:
        # Writes take SQLite's write lock up front: a revoke reads, then writes.
        with Session(write_engine(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _row(info: KeyInfo) -> dict[str, Any]:
    row = asdict(info)
    row["id"] = info.prefix
    del row["key_id"]
    row["scope"] = info.scope.value
    for field in ("created_at", "last_used_at", "revoked_at"):
        value: datetime | None = row[field]
        row[field] = value.isoformat() if value is not None else None
    return {"id": row.pop("id"), **row}
