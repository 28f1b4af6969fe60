"""`claude-api serve` and `claude-api schema`: run the API server, print its GraphQL schema."""

from __future__ import annotations

import typer

from claude_api.client import output

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Start the API server: GraphQL and GraphiQL at /graphql, REST under /v1, /healthz.

    It uses CLAUDE_API_DATABASE_URL (default: a SQLite file in your data directory) and
    applies pending migrations when it starts. On any address but loopback every request needs
    an API key (`claude-api keys create`); CLAUDE_API_AUTH=required asks for one on loopback too.

    Example: claude-api serve --port 8000, then open http://127.0.0.1:8000/graphql
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
        f"serving on http://{host}:{port}/graphql (database: {_safe(settings.database_url)}, "
        f"API keys: {keys})"
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)


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
