"""Migrations: applied to an empty database they equal the models, and they run idempotently."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect

from claude_api.models.db import alembic_config, current_revision, head_revision, upgrade
from tests.factories import add_events, make_event


def test_migrations_match_the_models(engine: Engine) -> None:
    command.check(alembic_config(engine))  # raises when autogenerate would find a difference


def test_upgrade_is_idempotent_and_keeps_data(engine: Engine) -> None:
    add_events(engine, make_event())
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM agent_usage").scalar_one() == 1


def test_seed_columns_and_indexes(engine: Engine) -> None:
    inspector = inspect(engine)
    seed = {
        "id", "task_id", "timestamp", "status", "duration_seconds", "cost_usd", "input_tokens",
        "output_tokens", "project_id", "error_message",
    }  # fmt: skip
    for table, name in (("agent_usage", "agent_name"), ("skill_usage", "skill_name")):
        columns = {column["name"] for column in inspector.get_columns(table)}
        assert seed | {name} <= columns
        indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
        assert {(name,), ("timestamp",), ("project_id",)} <= indexed
        unique = [ix for ix in inspector.get_indexes(table) if ix["unique"]]
        assert [ix["column_names"] for ix in unique] == [["event_id"]]
