"""Migrated databases for the tests without a migration per test.

A test that asks for a migrated database (the `engine` fixture) gets one in the state a fresh
migration leaves, but the migration runs once per test process:

- SQLite: the file of a database migrated once is copied to the test's path.
- PostgreSQL: each test process keeps one migrated schema. After a test its rows are deleted,
  its sequences restarted and its data version drawn anew. A test that changed the schema
  itself (dropped a table or a partition, migrated down) is found by comparing the catalog with
  the catalog after migration, and the schema is then replaced by a new one; so is a schema
  whose rows cannot be deleted at once (a connection left holding its locks) or whose migration
  or retention lock a connection still holds. Partitions a test made (maintenance makes those of
  the months its rows fall in) are dropped instead.

Rows are deleted rather than truncated: TRUNCATE makes new files for every table, partition and
index, ten times the cost of deleting the few rows a test writes.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import Connection, Engine, create_engine, exc, text

from claude_api.models.db import VERSION_TABLE, make_engine, upgrade
from claude_api.models.partitions import is_partition_name

logger = logging.getLogger(__name__)

DATA_VERSION_TABLE = "data_version"  # one row, whose random token a fresh migration draws
# A test's connection still holding locks: the schema is replaced rather than waited for.
LOCK_TIMEOUT = "2s"
VACUUM_AFTER_ROWS = 10_000  # a table that held more rows is vacuumed after the deletion

_FINGERPRINT_SQL = """
WITH rels AS (SELECT c.oid, c.relname FROM pg_class c
              WHERE c.relnamespace = to_regnamespace(current_schema()))
SELECT md5(concat_ws('|',
  (SELECT string_agg(concat_ws(',', c.relname, c.relkind, c.relpersistence, c.relnatts,
                               c.relispartition, pg_get_expr(c.relpartbound, c.oid),
                               c.relrowsecurity), ';' ORDER BY c.relname)
     FROM pg_class c JOIN rels r ON r.oid = c.oid),
  (SELECT string_agg(concat_ws(',', r.relname, a.attnum, a.attname, a.atttypid, a.atttypmod,
                               a.attnotnull, a.attisdropped, a.attidentity, a.attgenerated,
                               pg_get_expr(d.adbin, d.adrelid)), ';' ORDER BY r.relname, a.attnum)
     FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attnum > 0),
  (SELECT string_agg(concat_ws(',', r.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)),
                     ';' ORDER BY r.relname, k.conname)
     FROM pg_constraint k JOIN rels r ON r.oid = k.conrelid),
  (SELECT string_agg(pg_get_indexdef(i.indexrelid), ';' ORDER BY 1)
     FROM pg_index i JOIN rels r ON r.oid = i.indrelid),
  (SELECT string_agg(concat_ws(',', r.relname, t.tgname, t.tgenabled), ';'
                     ORDER BY r.relname, t.tgname)
     FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid),
  (SELECT string_agg(p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', ';'
                     ORDER BY 1)
     FROM pg_proc p WHERE p.pronamespace = to_regnamespace(current_schema())),
  (SELECT string_agg(t.typname, ';' ORDER BY 1)
     FROM pg_type t WHERE t.typnamespace = to_regnamespace(current_schema())),
  (SELECT string_agg(concat_ws(',', r.relname, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                               s.seqcycle), ';' ORDER BY r.relname)
     FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid),
  (SELECT string_agg(version_num, ';' ORDER BY 1) FROM alembic_version)
))
"""
_FINGERPRINT = text(_FINGERPRINT_SQL)
_TABLES_AND_PARTITIONS = text(
    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = to_regnamespace(current_schema()) "
    "AND c.relkind IN ('r', 'p')"
)
# Tables to empty: the plain and partitioned tables (a partition is emptied through its parent).
_TABLES = text(
    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = to_regnamespace(current_schema()) "
    "AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
)
_FOREIGN_KEYS = text(
    "SELECT k.conrelid::regclass::text, k.confrelid::regclass::text FROM pg_constraint k "
    "WHERE k.contype = 'f' AND k.connamespace = to_regnamespace(current_schema())"
)
_RESTART_SEQUENCES_SQL = (
    "SELECT setval(format('%I', sequencename)::regclass, start_value, false) "
    "FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL"
)
# The migration lock and the retention lock are advisory locks keyed by the schema's name.
_SCHEMA_LOCKS_HELD_SQL = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
    "AND objid::bigint = (hashtext(current_schema())::bigint & 4294967295)"
)


def _month_now() -> tuple[int, int]:
    now = datetime.now(UTC)
    return now.year, now.month


class MigratedPostgresql:
    """One migrated schema of a PostgreSQL database, handed to one test at a time."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.replaced = 0  # schemas dropped because a test changed them or left them locked
        self._admin = create_engine(base_url, pool_size=1)
        self._schema: str | None = None
        self._engine: Engine | None = None  # on the schema, for the resets
        self._fingerprint = ""
        self._tables: list[str] = []  # children before their parents
        self._relations: set[str] = set()  # the tables and partitions after migration
        self._month = _month_now()  # the migration made the partitions of this month and the next
        self._abandoned: list[str] = []

    def url_of(self, schema: str, *settings: str) -> str:
        separator = "&" if "?" in self.base_url else "?"
        options = "%20".join(f"-c{setting.replace('=', '%3D')}" for setting in settings)
        return f"{self.base_url}{separator}options=-csearch_path%3D{schema}" + (
            f"%20{options}" if options else ""
        )

    def checkout(self) -> str:
        """The URL of the schema, in the state a fresh migration leaves it."""
        if self._schema is None or self._month != _month_now():
            self._replace()
        assert self._schema is not None
        return self.url_of(self._schema)

    def checkin(self) -> None:
        """Bring the schema back to its state after migration, or replace it if it cannot be."""
        if self._schema is None or self._engine is None:
            return
        try:
            with self._engine.connect() as connection:
                found = self._empty(connection)
                if found == "changed" and self._as_migrated(connection):
                    found = self._empty(connection)
                if found == "emptied":
                    return
        except (exc.DBAPIError, psycopg.Error) as error:  # a table dropped, a lock held
            logger.info("schema %s could not be emptied (%s): replaced", self._schema, error)
        self._discard()

    def close(self) -> None:
        self._discard(replaced=False)
        for schema in self._abandoned:
            self._drop(schema, lock_timeout="10s")
        self._admin.dispose()

    def _drop(self, schema: str, lock_timeout: str) -> bool:
        try:
            with self._admin.begin() as connection:
                connection.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        except exc.DBAPIError as error:
            logger.warning("schema %s could not be dropped yet: %s", schema, error)
            return False
        return True

    def _as_migrated(self, connection: Connection) -> bool:
        """Whether the catalog is as the migration left it, once the partitions that a test made
        (maintenance makes the months of the rows it finds) are dropped."""
        with connection.begin():
            if connection.execute(_FINGERPRINT).scalar_one() == self._fingerprint:
                return True
            made = [
                name
                for name in connection.execute(_TABLES_AND_PARTITIONS).scalars()
                if is_partition_name(name) and name not in self._relations
            ]
            if not made:
                return False
            for name in made:
                connection.execute(text(f'DROP TABLE "{name}"'))
            return connection.execute(_FINGERPRINT).scalar_one() == self._fingerprint

    def _empty(self, connection: Connection) -> str:
        """Delete the rows, restart the sequences and draw a new data version, in one round
        trip that also reads the catalog: "emptied", or (nothing done) "changed" when the
        catalog is not as after migration, "locked" when a connection holds a lock of it."""
        script = "; ".join(
            (
                f"SELECT ({_FINGERPRINT_SQL}), ({_SCHEMA_LOCKS_HELD_SQL})",
                *(f'DELETE FROM "{table}"' for table in self._tables),
                _RESTART_SEQUENCES_SQL,
                f"INSERT INTO {DATA_VERSION_TABLE} (id, token) VALUES (1, {secrets.randbits(63)})",
            )
        )
        with connection.begin() as transaction:
            cursor = connection.connection.cursor()
            try:
                cursor.execute(script)
                fingerprint, locks = cursor.fetchone()
                if fingerprint != self._fingerprint or locks:
                    transaction.rollback()
                    return "locked" if locks else "changed"
                deleted = []
                for _ in self._tables:
                    cursor.nextset()
                    deleted.append(cursor.rowcount)
            finally:
                cursor.close()
        crowded = [t for t, n in zip(self._tables, deleted, strict=True) if n > VACUUM_AFTER_ROWS]
        if crowded:
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in crowded:
                autocommit.execute(text(f'VACUUM "{table}"'))
            autocommit.commit()
        return "emptied"

    def _discard(self, replaced: bool = True) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._schema is not None:
            self.replaced += replaced
            if not self._drop(self._schema, lock_timeout=LOCK_TIMEOUT):
                self._abandoned.append(self._schema)
            self._schema = None

    def _replace(self) -> None:
        self._discard()
        schema = f"test_{uuid.uuid4().hex[:12]}"
        with self._admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        self._schema = schema
        self._month = _month_now()
        engine = make_engine(self.url_of(schema, f"lock_timeout={LOCK_TIMEOUT}"), pool_size=1)
        self._engine = engine
        upgrade(engine)
        with engine.connect() as connection:
            self._fingerprint = connection.execute(_FINGERPRINT).scalar_one()
            tables = connection.execute(_TABLES).scalars().all()
            self._relations = set(connection.execute(_TABLES_AND_PARTITIONS).scalars())
            references = connection.execute(_FOREIGN_KEYS).all()
            seeded = [
                table
                for table in tables
                if connection.execute(text(f'SELECT EXISTS (SELECT FROM "{table}")')).scalar()
            ]
        if sorted(seeded) != sorted([VERSION_TABLE, DATA_VERSION_TABLE]):
            raise RuntimeError(
                f"a fresh migration fills {seeded}: tests/_migrated_databases.py restores only "
                f"{VERSION_TABLE} and {DATA_VERSION_TABLE}"
            )
        self._tables = _children_first(
            [table for table in tables if table != VERSION_TABLE], references
        )


def _children_first(tables: list[str], references: list[tuple[str, str]]) -> list[str]:
    """`tables` ordered so that a table comes before the tables its foreign keys refer to."""
    ordered: list[str] = []
    remaining = sorted(tables)
    while remaining:
        ready = [
            table
            for table in remaining
            if not any(
                parent == table and child in remaining and child != table
                for child, parent in references
            )
        ]
        if not ready:
            raise RuntimeError(f"foreign keys refer to each other in a cycle among {remaining}")
        ordered.extend(ready)
        remaining = [table for table in remaining if table not in ready]
    return ordered


class MigratedSqlite:
    """A SQLite database migrated once, copied for each test that needs one."""

    def __init__(self, directory: Path) -> None:
        template = directory / "migrated.db"
        engine = make_engine(f"sqlite:///{template}")
        try:
            upgrade(engine)
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            engine.dispose()
        self._content = template.read_bytes()

    def copy_to(self, path: Path) -> str:
        """A URL of a new database at `path` (readable by its owner only, as the service
        makes it), in the state a fresh migration leaves it."""
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(self._content)
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute(
                f"UPDATE {DATA_VERSION_TABLE} SET token = ? WHERE id = 1", (secrets.randbits(63),)
            )
        finally:
            connection.close()
        return f"sqlite:///{path}"
