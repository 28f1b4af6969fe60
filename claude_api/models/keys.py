"""API keys: made, listed, revoked and checked. A key is `cc_<key id>_<secret>`; only the key id
and the SHA-256 of the whole key are stored, so the table never holds a usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import NotFound
from claude_api.events import MAX_NAME_LENGTH
from claude_api.models.tables import ApiKey

KEY_PREFIX = "cc_"
KEY_ID_BYTES = 6  # 12 hex characters: a lookup id, not a secret (its uniqueness is checked)
SECRET_LENGTH = 43  # characters of [A-Za-z0-9]: log2(62) * 43 ≈ 256 bits of randomness
_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(rf"{KEY_PREFIX}([0-9a-f]{{{2 * KEY_ID_BYTES}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})")
_KEY_ID = re.compile(rf"(?:{KEY_PREFIX})?([0-9a-f]{{{2 * KEY_ID_BYTES}}})(?:_.*)?", re.S)
# Compared against when the key id is unknown, so that answer takes as long as a wrong secret.
_NO_HASH = "0" * 64


class Scope(StrEnum):
    """What a key may do. `read` queries; `write` records events; `admin` does everything
    (manages keys, runs tasks, purges). `write` does not imply `read`: a runner's key that can
    record but not read the analytics leaks nothing if it is stolen."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        """Whether a key of this scope may do what needs `needed`."""
        return self is Scope.ADMIN or self is needed


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """An API key as shown to people: everything but the secret (which is not stored)."""

    key_id: str
    name: str | None
    scope: Scope
    project_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def prefix(self) -> str:
        """The key's public start, `cc_<key id>`: how a person recognises it."""
        return f"{KEY_PREFIX}{self.key_id}"


class InvalidKey(Exception):
    """A presented key is not a valid one; `reason` says why, for the server's log only (a
    client is only told that its key is invalid), and `key_id` is its public id if it had one."""

    def __init__(self, reason: str, key_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key_id = key_id


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex.

    A plain hash, not a slow KDF: a key is 256 random bits, so there is no dictionary to try
    and a brute force is out of reach at any hashing speed; a slow hash would only slow every
    request.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(text: str) -> str | None:
    """The key id in `text`: a bare key id, `cc_<key id>`, or a whole key; None if none."""
    match = _KEY_ID.fullmatch(text.strip())
    return match.group(1) if match else None


def create_key(
    session: Session,
    *,
    scope: Scope | str,
    project_id: str | None = None,
    name: str | None = None,
    now: datetime | None = None,
) -> tuple[str, KeyInfo]:
    """A new key: the key itself (to show once; it cannot be recovered) and its record.

    The caller commits. Raises ValueError for an unknown scope or a bad name or project id.
    """
    scope = Scope(scope)
    for field, value in (("project", project_id), ("name", name)):
        if value is not None and not (0 < len(value) <= MAX_NAME_LENGTH and "\x00" not in value):
            raise ValueError(f"the {field} must be 1 to {MAX_NAME_LENGTH} characters, no NUL")
    key_id = secrets.token_hex(KEY_ID_BYTES)
    while _row(session, key_id) is not None:  # one chance in 2**48 per key made
        key_id = secrets.token_hex(KEY_ID_BYTES)
    key = f"{KEY_PREFIX}{key_id}_{''.join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))}"
    row = ApiKey(
        key_id=key_id,
        secret_hash=hash_key(key),
        name=name,
        scope=scope.value,
        project_id=project_id,
        created_at=now or datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return key, _info(row)


def list_keys(session: Session) -> list[KeyInfo]:
    """Every key, revoked ones included, oldest first."""
    rows = session.execute(sa.select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).scalars()
    return [_info(row) for row in rows]


def revoke_key(session: Session, key_id: str, *, now: datetime | None = None) -> KeyInfo:
    """Revoke the key (`key_id`, `cc_<key id>` or the key itself); revoking twice keeps the
    first time. The caller commits. Raises NotFound for an unknown key."""
    row = _row(session, key_id_of(key_id) or key_id)
    if row is None:
        raise NotFound(f"no API key {key_id_of(key_id) or key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = now or datetime.now(UTC)
        session.flush()
    return _info(row)


def verify_key(session: Session, key: str) -> KeyInfo:
    """The record of the key presented, if it is a valid, unrevoked key; else InvalidKey.

    The hashes are compared in constant time, and an unknown key id costs the same comparison.
    """
    match = _KEY.fullmatch(key)
    if match is None:
        raise InvalidKey("malformed key")
    key_id = match.group(1)
    row = _row(session, key_id)
    matches = hmac.compare_digest(row.secret_hash if row else _NO_HASH, hash_key(key))
    if row is None:
        raise InvalidKey("unknown key id", key_id)
    if not matches:
        raise InvalidKey("wrong secret", key_id)
    if row.revoked_at is not None:
        raise InvalidKey("revoked key", key_id)
    return _info(row)


def touch_key(session: Session, key_id: str, *, at: datetime) -> None:
    """Note that the key was used at `at` (never moving the time back). The caller commits."""
    session.execute(
        sa.update(ApiKey)
        .where(
            ApiKey.key_id == key_id,
            sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at),
        )
        .values(last_used_at=at)
    )


def _row(session: Session, key_id: str) -> ApiKey | None:
    return session.execute(sa.select(ApiKey).where(ApiKey.key_id == key_id)).scalar_one_or_none()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        name=row.name,
        scope=Scope(row.scope),
        project_id=row.project_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
