"""Engines, sessions and migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import make_url

from claude_api.files import PRIVATE, private_directory

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE_SECONDS = 2.0  # a pooled connection idle longer is checked before its use
_RETURNED = "claude_api.returned_at"
WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}
_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}
MIGRATION_LOCK_NAMESPACE = 0x63_6C_61_75  # any constant: the first key of the advisory lock
_PG_LOCK = text("SELECT pg_advisory_lock(:namespace, hashtext(current_schema()))")
_PG_UNLOCK = text("SELECT pg_advisory_unlock(:namespace, hashtext(current_schema()))")
_SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's files beside the database
# The newest migration in migrations/versions: every command that opens the database compares
# the stored revision with it, and alembic (with its script directory, which imports every
# migration) loads only when they differ. A test keeps it equal to alembic's head.
HEAD_REVISION = "0011"
VERSION_TABLE = "alembic_version"  # alembic's default, which migrations/env.py keeps


SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; a SQLite file and its directory are created on first use, readable
    by their owner only.

    SQLite runs in WAL mode (readers never block the writer) with a busy timeout, and write
    transactions begin IMMEDIATE so two writers wait for each other instead of failing. On
    PostgreSQL a pooled connection left idle for more than `PING_AFTER_IDLE_SECONDS` is checked
    before it is used, and plans without parallel workers.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"{backend!r} is not a database this service stores in: use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DATABASE"
        )
    if backend != "sqlite":
        engine = create_engine(url, **kwargs)
        _ping_idle_connections(engine)
        _plan_serially(engine)
        return engine
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        _private_sqlite_file(Path(database).expanduser())
    engine = create_engine(url, **kwargs)
    _configure_sqlite(engine)
    return engine


def _private_sqlite_file(path: Path) -> None:
    """The database's directory (when missing) and file (when new) are made for their owner only.

    The file is created empty (a valid SQLite database) with mode 0600 before SQLite opens it:
    SQLite gives its WAL, shared-memory and journal files the database file's permissions, so
    they are private from the start, with no window and no change to the process-wide umask.
    A file that already exists and that others can read is tightened, with a warning.
    """
    private_directory(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE))
    except FileExistsError:
        for existing in (path, *(path.with_name(path.name + side) for side in _SIDE_FILES)):
            _tighten(existing)
    except OSError:
        pass  # an unwritable directory: SQLite says so when it opens the file, as it always did


def _tighten(path: Path) -> None:
    # The file holds every project's rows and the key hashes: reading it bypasses the keys that
    # scope the service to projects. Sharing the data is the server's job, not the file's.
    try:
        status = path.stat()
    except OSError:
        return
    mode = stat.S_IMODE(status.st_mode)
    if not stat.S_ISREG(status.st_mode) or not mode & 0o077:
        return
    private = mode & 0o700
    try:
        os.chmod(path, private)
    except OSError as error:
        logger.warning(
            "%s is readable by other users (mode %04o) and could not be made %04o: %s; "
            "it holds every project's rows and key hashes",
            path,
            mode,
            private,
            error.strerror or error,
        )
        return
    logger.warning(
        "%s was readable by other users (mode %04o); made it %04o: it holds every project's "
        "rows and key hashes",
        path,
        mode,
        private,
    )


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot begin IMMEDIATE; take it over,
    # as the SQLAlchemy docs recommend, so the write path can ask for the write lock up front.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching a new file to WAL takes a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # The rollups key error messages by MD5, as PostgreSQL's md5() computes it.
        dbapi_connection.create_function("md5", 1, _md5, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        # On the driver's connection: a statement through SQLAlchemy costs a short read's time.
        connection.connection.driver_connection.execute(_BEGIN[mode])


def _plan_serially(engine: Engine) -> None:
    # The service reads small slices of the rollups and indexed raw rows. PostgreSQL plans
    # parallel workers for some of them, whose start-up (10-25 ms) costs several times the
    # work they share: a 30-day stats question took 28 ms with them and 12 ms without.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
        dbapi_connection.commit()


def _ping_idle_connections(engine: Engine) -> None:
    # A connection taken from the pool is checked with a round trip only if it sat there idle
    # for a while (the server may have closed it, or restarted): under load, connections come
    # back within milliseconds, and a ping on every checkout would double a short read's trips.
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and hands out another (a new one if need be).
            raise exc.DisconnectionError(str(error)) from error


def _md5(text: str | None) -> str | None:
    return None if text is None else hashlib.md5(text.encode()).hexdigest()


def _switch_to_wal(cursor: Any, attempts: int = 100) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
    # locked" at once, without its busy handler, while another process is opening the same new
    # file: try again for a few seconds.
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def write_engine(engine: Engine) -> Engine:
    """The same engine, with transactions that take SQLite's write lock when they begin."""
    return engine.execution_options(**WRITE_OPTIONS)


# ---- migrations -----------------------------------------------------------------------------


def alembic_config(engine: Engine) -> Config:
    """An alembic config bound to `engine`, with the migrations shipped in this package."""
    from alembic.config import Config

    config = Config()
    script_location = resources.files("claude_api.models") / "migrations"
    config.set_main_option("script_location", str(script_location))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision`; safe to call on every start, from several
    processes at once (they take turns; the first migrates, the others find nothing to do)."""
    if revision == "head" and current_revision(engine) == head_revision():
        return  # the usual start: no lock taken, so a read-only database still opens
    from alembic import command

    with _migration_lock(engine) as migrating:
        command.upgrade(alembic_config(migrating), revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Engine]:
    """An engine to migrate with while no other process migrates the same database."""
    if engine.dialect.name != "postgresql":
        # SQLite: alembic runs DDL outside one transaction there, so the database's own write
        # lock cannot make a second process wait for the whole upgrade; an exclusive lock on a
        # file beside the database does (the second process then finds nothing to do).
        database = engine.url.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            yield write_engine(engine)
            return
        lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
        with os.fdopen(descriptor, "r+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield write_engine(engine)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        return
    # PostgreSQL has no such lock for DDL: a session-level advisory lock per schema, held on a
    # connection of its own while the migrations run on another.
    with engine.connect() as connection:
        connection.execute(_PG_LOCK, {"namespace": MIGRATION_LOCK_NAMESPACE})
        try:
            yield engine
        finally:
            connection.execute(_PG_UNLOCK, {"namespace": MIGRATION_LOCK_NAMESPACE})
            connection.commit()


def current_revision(engine: Engine) -> str | None:
    """The schema version the database is at (None when it was never migrated).

    Read as alembic reads it, from its version table, without loading alembic. Raises
    ValueError when the table holds several versions (branches this project never makes).
    """
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        versions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(versions) > 1:
        raise ValueError(f"{VERSION_TABLE} holds several versions: {[v[0] for v in versions]}")
    return versions[0][0] if versions else None


def head_revision() -> str:
    """The schema version this code expects."""
    return HEAD_REVISION


def migrations_head_revision() -> str | None:
    """The head of the migrations shipped in this package, as alembic finds it (it imports
    every migration script): what `HEAD_REVISION` must be."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(
        alembic_config(create_engine("sqlite://"))
    ).get_current_head()
