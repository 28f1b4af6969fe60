"""The data version: a random token that every transaction changing the usage data replaces.

Equal tokens mean the same data (a new token is drawn from 2^63 values at each change), so an
answer computed under a token stays right for as long as the token is current, in this process
or any other sharing the database; and a database restored from a backup brings back its
token together with its data. Writers call `changed` in their transaction; readers call
`current`.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from claude_api.models.rollup_tables import DataVersion

_TABLE = DataVersion.__table__


def changed(connection: Connection) -> None:
    """Replace the token, in the connection's transaction."""
    insert = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(_TABLE)
    statement = insert.values(id=1, token=secrets.randbits(63))
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_TABLE.c.id], set_={"token": statement.excluded.token}
        )
    )


_CURRENT = sa.select(_TABLE.c.token).where(_TABLE.c.id == 1)


def current(session: Session) -> int | None:
    """The token the session's transaction sees; None before the first change."""
    return session.execute(_CURRENT).scalar()
