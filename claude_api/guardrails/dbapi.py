"""The service's database, opened without SQLAlchemy: its URL (`CLAUDE_API_DATABASE_URL`, as
the settings read it) to a bare sqlite3 or psycopg connection that only reads.

For the PreToolUse hook, which must answer in milliseconds: SQLAlchemy alone takes longer to
import than the whole budget check takes to run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

APP_NAME = "claude-api"  # the data directory's name, as `claude_api.config.APP_NAME`
ENV_PREFIX = "CLAUDE_API_"


class DatabaseUnavailable(Exception):
    """The database cannot be opened or read."""


class NoBudgetsTable(DatabaseUnavailable):
    """The database predates budgets (its schema was never upgraded to hold them)."""


def setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The environment variable `CLAUDE_API_<NAME>`, matched regardless of case as the
    settings match it; None when unset."""
    wanted = (ENV_PREFIX + name).upper()
    for key, value in (os.environ if environ is None else environ).items():
        if key.upper() == wanted:
            return value
    return None


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """`CLAUDE_API_DATABASE_URL`, else the SQLite file in the user's data directory."""
    configured = setting("DATABASE_URL", environ)
    if configured:
        return configured
    return f"sqlite:///{os.path.join(data_directory(), 'analytics.db')}"


def data_directory() -> str:
    """The user's data directory of claude-api, as `platformdirs.user_data_dir` names it.

    On Linux it is found here (`$XDG_DATA_HOME`, else `~/.local/share`): importing platformdirs
    costs more than the whole budget check; elsewhere, or with a HOME that is no absolute path,
    platformdirs is asked.
    """
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_DATA_HOME", "")
        home = os.environ.get("HOME", "")
        if not os.path.isabs(base) and os.path.isabs(home):
            base = os.path.join(home, ".local", "share")
        if os.path.isabs(base):
            return os.path.join(base, APP_NAME)
    from platformdirs import user_data_dir

    return user_data_dir(APP_NAME)


class Connection:
    """A read-only connection: `dialect` and `rows(sql, params)`, a `Reader` of the spend."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self._connection = connection
        self.dialect = dialect

    def rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        try:
            cursor = self._connection.execute(sql, params)
            return cursor.fetchall()
        except Exception as error:
            # sqlite3: "no such table: budgets"; psycopg: UndefinedTable (SQLSTATE 42P01).
            missing = "no such table" in str(error) or getattr(error, "sqlstate", None) == "42P01"
            raise (NoBudgetsTable if missing else DatabaseUnavailable)(_reason(error)) from error

    def close(self) -> None:
        self._connection.close()


def connect(url: str, *, timeout: float = 2.0) -> Connection:
    """A read-only connection to the database at the SQLAlchemy `url`; a SQLite file that does
    not exist is not created. Raises DatabaseUnavailable."""
    scheme, _, rest = url.partition("://")
    backend = scheme.split("+")[0]
    try:
        if backend == "sqlite":
            return Connection(_sqlite(rest, timeout), "sqlite")
        if backend in ("postgresql", "postgres"):
            import psycopg

            connection = psycopg.connect(
                f"postgresql://{rest}", connect_timeout=max(1, round(timeout)), autocommit=True
            )
            return Connection(connection, "postgresql")
    except DatabaseUnavailable:
        raise
    except Exception as error:
        raise DatabaseUnavailable(_reason(error)) from error
    raise DatabaseUnavailable(f"unsupported database URL scheme {scheme!r}")


def sqlite_path(rest: str) -> str | None:
    """The file of a `sqlite://` URL's remainder, as SQLAlchemy reads it (None: in memory)."""
    path = rest.partition("?")[0].removeprefix("/")
    if "%" in path:  # urllib.parse only when needed: it costs the hook's start 10 ms
        from urllib.parse import unquote

        path = unquote(path)
    return None if path in ("", ":memory:") else path


def _sqlite(rest: str, timeout: float) -> sqlite3.Connection:
    import sqlite3  # here: the hook's other paths (the inbox) need no database

    path = sqlite_path(rest)
    if path is None:
        raise DatabaseUnavailable("an in-memory database holds no budgets")
    # mode=rw: a missing file is an error, never a new empty database. A URI must escape
    # what it reads as its own syntax.
    if any(character in path for character in "%?#"):
        from urllib.parse import quote

        path = quote(path)
    uri = f"file:{path}?mode=rw"
    connection = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    connection.execute("PRAGMA query_only = 1")
    return connection


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
