"""The SQLite database is readable by its owner only: its directory, the file and the WAL, shared
memory and journal files SQLite makes beside it, checked on real processes in a fresh home."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from tests.server_process import server_process

CLAUDE_API = Path(sys.executable).parent / "claude-api"
SIDE_FILES = ("-wal", "-shm", "-journal")


def cli(
    *args: str, home: Path, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`claude-api` in a fresh home (no XDG directories set), as a user whose umask is 022."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLAUDE_API_", "XDG_"))
    }
    env["HOME"] = str(home)
    if database_url is not None:
        env["CLAUDE_API_DATABASE_URL"] = database_url
    result = subprocess.run(
        [str(CLAUDE_API), *args],
        capture_output=True,
        text=True,
        env=env,
        umask=0o022,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def side_files(database: Path) -> list[Path]:
    return [database.with_name(database.name + suffix) for suffix in SIDE_FILES]


def test_a_fresh_data_directory_and_database_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = home / ".local" / "share" / "claude-api"  # the XDG default, as platformdirs finds it
    database = data / "analytics.db"

    cli("demo", "--events", "100", home=home)
    assert mode(data) == 0o700
    assert mode(database) == 0o600
    for path in side_files(database):
        assert not path.exists() or mode(path) == 0o600, path

    # While the server holds its connections, the WAL and shared memory files stay: write more.
    url = f"sqlite:///{database}"
    with server_process(url, tmp_path / "server.log", HOME=str(home)):
        cli("demo", "--events", "100", "--seed", "1", home=home, database_url=url)
        wal, shm, _ = side_files(database)
        assert wal.exists() and shm.exists()
        assert (mode(wal), mode(shm)) == (0o600, 0o600)
    assert mode(database) == 0o600


def test_an_existing_database_others_can_read_is_tightened_with_a_warning(
    tmp_path: Path,
) -> None:
    # A database made by an earlier version, in use by another process: its WAL files exist.
    database = tmp_path / "old" / "analytics.db"
    database.parent.mkdir()
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE kept (x)")
        connection.execute("INSERT INTO kept VALUES (1)")
        connection.commit()
        wal, shm, _ = side_files(database)
        for path in (database, wal, shm):
            path.chmod(0o644)

        result = cli("db", "upgrade", home=tmp_path, database_url=f"sqlite:///{database}")
        for path in (database, wal, shm):
            assert mode(path) == 0o600, path
            assert f"{path} was readable by other users (mode 0644); made it 0600" in result.stderr
        assert connection.execute("SELECT x FROM kept").fetchall() == [(1,)]
    finally:
        connection.close()
    assert mode(database.parent) == 0o755  # a directory that was there is not ours to change

    again = cli("db", "upgrade", home=tmp_path, database_url=f"sqlite:///{database}")
    assert "readable by other users" not in again.stderr


def test_a_chosen_directory_is_created_private_and_an_existing_one_left_alone(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    new = tmp_path / "made" / "by" / "us"
    for database in (shared / "a.db", new / "b.db"):
        cli("db", "upgrade", home=tmp_path, database_url=f"sqlite:///{database}")
        assert mode(database) == 0o600
    assert mode(shared) == 0o755
    assert mode(new) == 0o700


def test_the_hook_log_and_its_directory_are_private(tmp_path: Path) -> None:
    """The hook may be the first command a user's machine runs: it creates the data directory
    and its log, which name sessions and projects, readable by their owner only."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLAUDE_API_", "XDG_"))
    }
    env["HOME"] = str(home)
    result = subprocess.run(
        [str(CLAUDE_API), "hook"],
        input="not json",
        capture_output=True,
        text=True,
        env=env,
        umask=0o022,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = home / ".local" / "share" / "claude-api"
    log = data / "hook.log"
    assert "not JSON" in log.read_text()
    assert mode(data) == 0o700
    assert mode(log) == 0o600
