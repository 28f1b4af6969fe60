"""Alembic environment: runs against the engine handed over in `config.attributes`."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Engine, MetaData, create_engine
from sqlmodel import SQLModel

import claude_api.models.alerts
import claude_api.models.budgets
import claude_api.models.rollup_tables
import claude_api.models.tables  # noqa: F401
from claude_api.models import partitions

config = context.config


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no engine or sqlalchemy.url given to the migrations")
    return create_engine(url)


def _include_name(name: str | None, type_: str, _parents: Any) -> bool:
    # The months of a partitioned usage table are made by maintenance, not by the models.
    return not (type_ == "table" and partitions.is_partition_name(name or ""))


def _include_object(
    item: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any
) -> bool:
    # On PostgreSQL the event id's unique index holds the partition key too (the registry keeps
    # the id alone unique): the models describe SQLite's.
    table = getattr(getattr(item, "table", None), "name", None)
    return not (
        type_ == "index" and table in partitions.PARTITIONED and name == f"ix_{table}_event_id"
    )


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        postgresql = connection.dialect.name == "postgresql"
        target: list[MetaData] = [SQLModel.metadata]
        if postgresql:
            target.append(partitions.METADATA)
        context.configure(
            connection=connection,
            target_metadata=target,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=_include_name,
            include_object=_include_object if postgresql else None,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
