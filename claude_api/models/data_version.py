"""The data version: a random token that every transaction changing the usage data replaces.

Equal tokens mean the same data (a new token is drawn from 2^63 values at each change), so an
answer computed under a token stays right for as long as the token is current, in this process
or any other sharing the database; and a database restored from a backup brings back its
token together with its data. Writers call `changed` in their transaction; readers call
`current`, or `latest` to learn the token now without a transaction of their own.

A second token, the settled token, changes only with the buckets that ended `SETTLED_AFTER`
ago or earlier (`settled`): writes of invocations that started within the last
`WRITES_SETTLE_AFTER` leave it alone, so what was computed from settled buckets stays right
across the live writes of running sessions. The day between the two ages absorbs the clocks
of different processes and a writer's transaction that takes long to commit.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from claude_api.models.rollup_tables import DataVersion

_TABLE = DataVersion.__table__
_SETTLED_ID = 2  # the row of the settled token
SETTLED_AFTER = timedelta(days=2)
WRITES_SETTLE_AFTER = timedelta(days=1)
ANY_TIME = datetime.min.replace(tzinfo=UTC)


def changed(connection: Connection, *, earliest_start: datetime | None = ANY_TIME) -> None:
    """Replace the token, in the connection's transaction, and the settled token too when the
    change reached an invocation that started `WRITES_SETTLE_AFTER` ago or earlier.
    `earliest_start`: the earliest start of an invocation the change added to the rollups or
    wrote as running (answers count running rows from the raw rows), None when there was none;
    by default, any bucket may have changed."""
    settles = earliest_start is not None and earliest_start < utc_now() - WRITES_SETTLE_AFTER
    insert = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(_TABLE)
    tokens = [{"id": id, "token": secrets.randbits(63)} for id in (1, _SETTLED_ID)]
    statement = insert.values(tokens)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_TABLE.c.id],
            set_={"token": statement.excluded.token},
            where=None if settles else _TABLE.c.id == 1,  # the settled row only made if missing
        )
    )


def utc_now() -> datetime:
    """The current time, as writers and readers of the settled token compare it."""
    return datetime.now(UTC)


def settled_before() -> datetime:
    """The instant before which buckets have settled: `SETTLED_AFTER` ago."""
    return utc_now() - SETTLED_AFTER


_CURRENT = sa.select(_TABLE.c.token).where(_TABLE.c.id == 1)
_SETTLED = sa.select(_TABLE.c.token).where(_TABLE.c.id == _SETTLED_ID)
_CURRENT_SQL = "SELECT token FROM data_version WHERE id = 1"


def current(session: Session | Connection) -> int | None:
    """The token the session's (or connection's) transaction sees; None before the first change."""
    return session.execute(_CURRENT).scalar()


def settled(session: Session | Connection) -> int | None:
    """The settled token the session's transaction sees; None before the first change."""
    return session.execute(_SETTLED).scalar()


class Unknown(Exception):
    """The token cannot be had at once: read it in a transaction of its own (`current`)."""


class _Watcher:
    """A connection of its own to a SQLite file, which never writes. SQLite's `data_version`
    pragma on it changes whenever another connection, in any process, commits; the token is
    read again only then, so learning that it is unchanged costs a few microseconds."""

    def __init__(self, path: str) -> None:
        # No busy timeout: a check that would wait gives up at once (Unknown) instead.
        self._connection = sqlite3.connect(
            path, timeout=0, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA query_only = 1")
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._seen: int | None = None  # the pragma's value when the token was last read
        self._token: int | None = None

    def token(self) -> int | None:
        if os.getpid() != self._pid:  # a forked child: the connection is its parent's
            raise Unknown
        with self._lock:
            try:
                # The pragma first: a token read after it is at least as new as what it saw.
                seen = self._connection.execute("PRAGMA data_version").fetchone()[0]
                if seen != self._seen:
                    row = self._connection.execute(_CURRENT_SQL).fetchone()
                    self._token, self._seen = (None if row is None else row[0]), seen
            except sqlite3.Error as error:
                raise Unknown from error
            return self._token

    def close(self) -> None:
        with self._lock:
            self._connection.close()


_WATCHERS: WeakKeyDictionary[Engine, _Watcher] = WeakKeyDictionary()
_WATCHERS_LOCK = threading.Lock()


def watch(engine: Engine) -> bool:
    """Make `latest` answer for `engine` without a transaction, where it can: a SQLite file
    (not an in-memory database). Returns whether it can; call `unwatch` when done."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        return False
    if database.startswith("file:") or engine.url.query.get("uri"):
        return False
    with _WATCHERS_LOCK:
        if engine not in _WATCHERS:
            _WATCHERS[engine] = _Watcher(database)
    return True


def unwatch(engine: Engine) -> None:
    """Stop watching `engine` (nothing if it was not watched)."""
    with _WATCHERS_LOCK:
        watcher = _WATCHERS.pop(engine, None)
    if watcher is not None:
        watcher.close()


def latest(engine: Engine) -> int | None:
    """The token now (None before the first change), for a watched engine: it never waits for
    another connection. Raises Unknown when the engine is not watched or the check would wait."""
    watcher = _WATCHERS.get(engine)
    if watcher is None:
        raise Unknown
    return watcher.token()
