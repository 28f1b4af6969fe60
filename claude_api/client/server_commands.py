"""`claude-api serve` and `claude-api schema`: run the API server, print its GraphQL schema."""

from __future__ import annotations

import os
from typing import Any

import typer

from claude_api.client import output

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
WORKER_START_SECONDS = 60
_BIND_HOST = "CLAUDE_API_SERVE_BIND_HOST"  # how `serve` tells its workers the address it binds


def serve(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Server processes sharing the port (on PostgreSQL; each answers consistently "
        "with the others).",
    ),
) -> None:
    """Start the API server: the dashboard at /, GraphQL and GraphiQL at /graphql, REST under
    /v1, /healthz.

    It uses CLAUDE_API_DATABASE_URL (default: a SQLite file in your data directory) and
    applies pending migrations when it starts. On any address but loopback every request needs
    an API key (`claude-api keys create`); CLAUDE_API_AUTH=required asks for one on loopback too.

    Example: claude-api serve --port 8000, then open http://127.0.0.1:8000/
    """
    import uvicorn

    from claude_api.config import Settings
    from claude_api.server.app import create_app
    from claude_api.server.auth import AuthPolicy

    settings = Settings()
    try:
        app = create_app(settings, bind_host=host)
    except ValueError as error:
        output.error(str(error))
        raise typer.Exit(1) from None
    keys = "required" if AuthPolicy.of(settings, host).required({}) else "off"
    output.info(
        f"serving the dashboard on http://{host}:{port}/ and GraphQL on /graphql "
        f"(database: {_safe(settings.database_url)}, "
        f"API keys: {keys}{f', {workers} workers' if workers > 1 else ''})"
    )
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    # Each worker process builds its own app (engine, tracker, caches) from the same settings.
    # Migrate once here, so that the workers start together without waiting for each other.
    from claude_api.models.db import make_engine, upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    os.environ[_BIND_HOST] = host
    uvicorn.run(
        f"{__name__}:app_from_environment",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        workers=workers,
        # A worker answers its supervisor only once it has imported the app, which takes
        # seconds on a busy machine: uvicorn's default of 5 s restarts workers in a loop there.
        timeout_worker_healthcheck=WORKER_START_SECONDS,
    )


def app_from_environment() -> Any:
    """The app of one worker of `serve --workers N`."""
    from claude_api.config import Settings
    from claude_api.server.app import create_app

    return create_app(Settings(), bind_host=os.environ.get(_BIND_HOST, DEFAULT_HOST))


def schema() -> None:
    """Print the GraphQL schema (SDL), as committed in schema.graphql.

    Example: claude-api schema > schema.graphql
    """
    from claude_api.graph.schema import export_sdl

    output.stdout.out(export_sdl(), end="", highlight=False)


def _safe(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
