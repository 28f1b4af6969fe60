"""Pooled PostgreSQL connections: one left idle past `PING_AFTER_IDLE_SECONDS` is checked
before use, so a connection the server closed meanwhile is replaced instead of failing a
request."""

from __future__ import annotations

import time

from sqlalchemy import create_engine, text

from claude_api.models.db import PING_AFTER_IDLE_SECONDS, make_engine

BACKEND_PID = text("SELECT pg_backend_pid()")


def test_a_connection_the_server_closed_while_idle_is_replaced(postgresql_url: str) -> None:
    engine = make_engine(postgresql_url)
    admin = create_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            closed = connection.execute(BACKEND_PID).scalar_one()
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": closed})
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
        with engine.connect() as connection:
            assert connection.execute(BACKEND_PID).scalar_one() != closed
    finally:
        engine.dispose()
        admin.dispose()
