"""Alembic environment: runs against the engine handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine
from sqlmodel import SQLModel

import claude_api.models.rollup_tables
import claude_api.models.tables  # noqa: F401

MIGRATION_ONLY_INDEXES = {"ux_usage_error_rollup_key"}

config = context.config


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no engine or sqlalchemy.url given to the migrations")
    return create_engine(url)


def _compared(item: object, name: str | None, kind: str, reflected: bool, other: object) -> bool:
    """Leave out of model comparison what only the migrations define: the error rollup's
    unique index differs per database (see claude_api.models.rollups.error_key_sql)."""
    return not (kind == "index" and name in MIGRATION_ONLY_INDEXES)


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_object=_compared,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
