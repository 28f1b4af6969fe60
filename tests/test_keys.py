"""API keys: made, listed and revoked through the real CLI (in-process and as a subprocess),
stored only as hashes, checked in constant time, refused once revoked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.errors import NotFound
from claude_api.models.keys import (
    KEY_PREFIX,
    InvalidKey,
    Scope,
    create_key,
    key_id_of,
    list_keys,
    revoke_key,
    touch_key,
    verify_key,
)
from tests.auth_support import database_url


def cli(engine: Engine, *args: str) -> str:
    """Run `claude-api keys ...` on the database; its stdout (it must succeed)."""
    env = {"CLAUDE_API_DATABASE_URL": database_url(engine), "COLUMNS": "100"}
    result = CliRunner().invoke(app, ["keys", *args], env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def table_dump(engine: Engine) -> str:
    """Every value of every column of the key table, as one text."""
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM api_key")).all()
    return repr([tuple(row) for row in rows])


def test_a_key_is_shown_once_and_only_its_hash_is_stored(engine: Engine) -> None:
    created = json.loads(cli(engine, "create", "--scope", "write", "--project", "web", "--json"))
    key = created["key"]
    assert key.startswith(KEY_PREFIX) and created["id"] == key[: len(created["id"])]
    secret = key.rsplit("_", 1)[1]
    assert len(secret) >= 40
    stored = table_dump(engine)
    assert secret not in stored and key not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored
    listed = cli(engine, "list", "--json")
    assert secret not in listed and "key" not in json.loads(listed)[0]
    assert json.loads(listed)[0] | {"created_at": None} == {
        "id": created["id"],
        "name": None,
        "scope": "write",
        "project_id": "web",
        "created_at": None,
        "last_used_at": None,
        "revoked_at": None,
    }


def test_create_prints_the_key_alone_on_stdout(engine: Engine) -> None:
    env = {"CLAUDE_API_DATABASE_URL": database_url(engine)}
    result = CliRunner().invoke(
        app, ["keys", "create", "--scope", "read", "--project-id", "p", "--name", "me"], env=env
    )
    assert result.exit_code == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith(KEY_PREFIX) and "\n" not in key
    assert "cannot be shown again" in result.stderr and key not in result.stderr
    with Session(engine) as session:
        assert verify_key(session, key).project_id == "p"


def test_list_shows_every_key_without_secrets_and_revoke_marks_it(engine: Engine) -> None:
    read = json.loads(cli(engine, "create", "--scope", "read", "--name", "dash", "--json"))
    admin = json.loads(cli(engine, "create", "--scope", "admin", "--json"))
    printed = cli(engine, "list")
    for created in (read, admin):
        assert created["id"] in printed
        assert created["key"].rsplit("_", 1)[1] not in printed
    assert "dash" in printed and "admin" in printed
    cli(engine, "revoke", read["id"])
    rows = {row["id"]: row for row in json.loads(cli(engine, "list", "--json"))}
    assert rows[read["id"]]["revoked_at"] is not None
    assert rows[admin["id"]]["revoked_at"] is None
    with Session(engine) as session, pytest.raises(InvalidKey, match="revoked"):
        verify_key(session, read["key"])


def test_revoking_an_unknown_key_fails(engine: Engine) -> None:
    env = {"CLAUDE_API_DATABASE_URL": database_url(engine)}
    result = CliRunner().invoke(app, ["keys", "revoke", "cc_000000000000"], env=env)
    assert result.exit_code == 1
    assert "no API key '000000000000'" in result.stderr


def test_a_bad_scope_is_refused(engine: Engine) -> None:
    env = {"CLAUDE_API_DATABASE_URL": database_url(engine)}
    result = CliRunner().invoke(app, ["keys", "create", "--scope", "owner"], env=env)
    assert result.exit_code == 2
    with Session(engine) as session:
        assert list_keys(session) == []


def test_the_real_command_in_a_subprocess(engine: Engine) -> None:
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": database_url(engine), "COLUMNS": "100"}
    # The console script installed beside this interpreter, as a user runs it.
    command = [str(Path(sys.executable).parent / "claude-api"), "keys"]
    made = subprocess.run(
        [*command, "create", "--scope", "read", "--name", "sub"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = made.stdout.strip()
    listed = subprocess.run(
        [*command, "list"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert key[: len(KEY_PREFIX) + 12] in listed.stdout and "sub" in listed.stdout
    assert key.rsplit("_", 1)[1] not in listed.stdout + listed.stderr + made.stderr
    revoked = subprocess.run(
        [*command, "revoke", key], env=env, capture_output=True, text=True, timeout=60
    )
    assert revoked.returncode == 0, revoked.stderr
    assert key.rsplit("_", 1)[1] not in revoked.stdout + revoked.stderr


# ---- the key module ------------------------------------------------------------------------


def test_verify_accepts_the_key_and_nothing_close_to_it(engine: Engine) -> None:
    with Session(engine) as session:
        key, info = create_key(session, scope=Scope.READ, project_id="web")
        session.commit()
        assert verify_key(session, key) == info
        key_id, secret = info.key_id, key.rsplit("_", 1)[1]
        flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        cases = {
            f"{KEY_PREFIX}{key_id}_{flipped}": "wrong secret",
            f"{KEY_PREFIX}{'f' * 12}_{secret}": "unknown key id",
            key + "x": "malformed key",
            key.upper(): "malformed key",
            "": "malformed key",
            f"{KEY_PREFIX}{key_id}": "malformed key",
        }
        for presented, reason in cases.items():
            with pytest.raises(InvalidKey) as raised:
                verify_key(session, presented)
            assert raised.value.reason == reason, presented


def test_keys_are_random_and_unique(engine: Engine) -> None:
    with Session(engine) as session:
        made = [create_key(session, scope="read") for _ in range(50)]
        session.commit()
    assert len({key for key, _ in made}) == len({info.key_id for _, info in made}) == 50


def test_revoke_takes_an_id_a_prefix_or_the_key(engine: Engine) -> None:
    with Session(engine) as session:
        keys = [create_key(session, scope="read")[0] for _ in range(3)]
        key_ids = [key_id_of(key) for key in keys]
        assert all(key_ids)
        first = revoke_key(session, key_ids[0] or "")
        revoke_key(session, keys[1][: len(KEY_PREFIX) + 12])
        revoke_key(session, keys[2])
        again = revoke_key(session, key_ids[0] or "", now=datetime.now(UTC) + timedelta(days=1))
        assert again.revoked_at == first.revoked_at  # the first revocation stands
        assert all(info.revoked_at is not None for info in list_keys(session))
        with pytest.raises(NotFound):
            revoke_key(session, "nonsense")


def test_last_use_never_moves_back(engine: Engine) -> None:
    later = datetime(2026, 6, 1, tzinfo=UTC)
    with Session(engine) as session:
        _, info = create_key(session, scope="read")
        touch_key(session, info.key_id, at=later)
        touch_key(session, info.key_id, at=later - timedelta(hours=1))
        session.commit()
        [listed] = list_keys(session)
    assert listed.last_used_at == later


@pytest.mark.parametrize(("field", "value"), [("project_id", ""), ("name", "x" * 201)])
def test_bad_names_are_refused(engine: Engine, field: str, value: str) -> None:
    with Session(engine) as session, pytest.raises(ValueError):
        create_key(session, scope="read", **{field: value})


def test_scopes() -> None:
    assert Scope.ADMIN.allows(Scope.READ) and Scope.ADMIN.allows(Scope.WRITE)
    assert Scope.READ.allows(Scope.READ) and not Scope.READ.allows(Scope.WRITE)
    # A runner's key records but cannot read the analytics back.
    assert Scope.WRITE.allows(Scope.WRITE) and not Scope.WRITE.allows(Scope.READ)
    assert not Scope.WRITE.allows(Scope.ADMIN) and not Scope.READ.allows(Scope.ADMIN)
