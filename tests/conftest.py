"""Shared fixtures: a migrated database on SQLite and, when configured, on PostgreSQL.

A test that uses `engine` gets its database already migrated, from a migration done once per
test process (tests/_migrated_databases.py); a test that asks only for `database_url`,
`sqlite_url` or `postgresql_url` gets an empty database, to migrate (or not) itself.
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx._transports.default
import httpx2._transports.default
import pytest
from sqlalchemy import Engine, create_engine, text

from claude_api.models.db import make_engine, upgrade
from claude_api.tracking import Tracker, build_tracker
from tests._migrated_databases import MigratedPostgresql, MigratedSqlite

POSTGRES_ENV = "CLAUDE_API_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]

# The servers the tests start (in-process and `claude-api serve` alike) leave out the warm-up of
# the dashboard's first views, which would read in the background of every test; the tests of
# the warm-up turn it on.
os.environ["CLAUDE_API_DASHBOARD_WARM_UP"] = "false"


@pytest.fixture(scope="session", autouse=True)
def _one_default_tls_context() -> Iterator[None]:
    """Every httpx client of the test process shares one default TLS context.

    httpx (and httpx2, under Starlette's TestClient and gql) makes a context for each client it
    builds, loading the whole CA bundle (10-30 ms), and `httpx.get` builds a client per call; the
    tests speak plain HTTP on loopback thousands of times and never verify a certificate.
    """
    with pytest.MonkeyPatch.context() as patch:
        for transports in (httpx._transports.default, httpx2._transports.default):
            patch.setattr(transports, "create_ssl_context", _shared(transports.create_ssl_context))
        yield


def _shared(build: Callable[..., ssl.SSLContext]) -> Callable[..., ssl.SSLContext]:
    """`build`, whose default context (verify=True, no client certificate) is made once."""
    made: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}

    def create_ssl_context(
        verify: Any = True, cert: Any = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            return build(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in made:
            made[key] = build(verify=verify, cert=cert, trust_env=trust_env)
        return made[key]

    return create_ssl_context


def _postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} must be set in CI: PostgreSQL tests may not skip")
        pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL tests")
    return url


def _wants_migrated(request: pytest.FixtureRequest) -> bool:
    """Whether the test uses `engine`, which migrates the database it is given anyway."""
    return "engine" in request.fixturenames


@pytest.fixture(scope="session")
def _migrated_postgresql() -> Iterator[MigratedPostgresql]:
    migrated = MigratedPostgresql(_postgres_base_url())
    yield migrated
    migrated.close()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> MigratedSqlite:
    return MigratedSqlite(tmp_path_factory.mktemp("migrated"))


@pytest.fixture
def postgresql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL of the test PostgreSQL database whose search path is a new, empty schema (or, for a
    test that uses `engine`, a schema as a fresh migration leaves it)."""
    if _wants_migrated(request):
        migrated: MigratedPostgresql = request.getfixturevalue("_migrated_postgresql")
        yield migrated.checkout()
        migrated.checkin()
        return
    base = _postgres_base_url()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a new SQLite file (or, for a test that uses `engine`, of a file as a fresh
    migration leaves it)."""
    if _wants_migrated(request):
        migrated: MigratedSqlite = request.getfixturevalue("_migrated_sqlite")
        return migrated.copy_to(tmp_path / "analytics.db")
    return f"sqlite:///{tmp_path / 'analytics.db'}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database."""
    engine = make_engine(database_url)
    upgrade(engine)  # nothing to do on the databases above, but `database_url` may be overridden
    yield engine
    engine.dispose()


@pytest.fixture
def tracker(engine: Engine) -> Iterator[Tracker]:
    """A tracker writing to `engine`, without third-party plugins and without retry delays."""
    tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    yield tracker
    tracker.close()
