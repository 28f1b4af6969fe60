"""Migrations: applied to an empty database they equal the models, and they run idempotently."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, inspect

from claude_api.events import Status, UsageEvent
from claude_api.models.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from claude_api.models.rollup_tables import KindRollup, ModelRollup, UsageRollup
from claude_api.models.rollups import backfill
from claude_api.models.tables import NAME_COLUMNS, USAGE_TABLES
from tests.factories import BASE_TIME, add_events, make_event


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
        if engine.dialect.name == "postgresql":
            # Partitioned by month: the registry holds each event id once (tests/test_partitions).
            assert [ix["column_names"] for ix in unique] == [["event_id", "timestamp"]]
            registry = inspector.get_pk_constraint("invocation_ids")["constrained_columns"]
            assert registry == ["event_id"]
        else:
            assert [ix["column_names"] for ix in unique] == [["event_id"]]


def test_cache_token_rollups_are_backfilled(database_url: str) -> None:
    """Rows written before the cache token measures existed are counted in them after the
    upgrade, per bucket and key, as the raw rows say."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0005")
        events = [
            make_event(timestamp=BASE_TIME, cache_read_tokens=7_000_000_000, project_id="web"),
            make_event(timestamp=BASE_TIME + timedelta(minutes=5), cache_creation_tokens=300),
            make_event(
                timestamp=BASE_TIME + timedelta(days=1),
                cache_read_tokens=11,
                cache_creation_tokens=13,
                model=None,
            ),
            make_event(kind="skill", name="pdf", cache_read_tokens=17, cache_creation_tokens=19),
            make_event(status=Status.RUNNING, cache_read_tokens=1_000),  # not in the rollups
        ]
        _write_as_of_0005(engine, events)
        upgrade(engine)
        finished = [event for event in events if event.status is not Status.RUNNING]
        with engine.connect() as connection:
            for model, key in (
                (UsageRollup, ("kind", "name", "project_key")),
                (ModelRollup, ("kind", "name", "project_key", "model_key", "status")),
                (KindRollup, ("kind",)),
            ):
                table = model.__table__
                measures = (
                    "cache_read_count", "cache_read_sum", "cache_creation_count",
                    "cache_creation_sum", "invocations",
                )  # fmt: skip
                for grain in ("hour", "day", "month"):
                    rows = connection.execute(
                        sa.select(
                            *(table.c[column] for column in ("bucket_start", *key, *measures))
                        ).where(table.c.grain == grain)
                    ).all()
                    got = {tuple(row[: len(key) + 1]): tuple(row[len(key) + 1 :]) for row in rows}
                    expected = _expected_cache_rollup(finished, grain, key)
                    assert got == expected, (table.name, grain)
    finally:
        engine.dispose()


def _write_as_of_0005(engine: Engine, events: list[UsageEvent]) -> None:
    """Store raw rows and fold them into the rollups as the write path of revision 0005 did."""
    with engine.begin() as connection:
        for event in events:
            table = USAGE_TABLES[event.kind].__table__
            connection.execute(
                table.insert().values(
                    event_id=event.event_id,
                    **{NAME_COLUMNS[event.kind]: event.name},
                    task_id=event.task_id,
                    project_id=event.project_id,
                    timestamp=event.timestamp,
                    status=event.status.value,
                    cost_usd=event.cost_usd,
                    input_tokens=event.input_tokens,
                    output_tokens=event.output_tokens,
                    cache_read_tokens=event.cache_read_tokens,
                    cache_creation_tokens=event.cache_creation_tokens,
                    model=event.model,
                    source=event.source,
                )
            )
        backfill(
            connection,
            tables=("usage_rollup", "usage_model_rollup"),
            summed=_SUMMED_AS_OF_0005,
        )
        summed = ", ".join(_SUMMED_AS_OF_0005)
        sums = ", ".join(f"sum({column})" for column in _SUMMED_AS_OF_0005)
        connection.exec_driver_sql(
            f"INSERT INTO usage_kind_rollup (grain, bucket_start, kind, {summed}, first_seen, "
            f"last_seen) SELECT grain, bucket_start, kind, {sums}, min(first_seen), "
            "max(last_seen) FROM usage_rollup GROUP BY grain, bucket_start, kind"
        )


_SUMMED_AS_OF_0005 = (
    "invocations", "completed", "failed", "cost_count", "cost_sum", "duration_count",
    "duration_sum", "input_count", "input_sum", "output_count", "output_sum",
)  # fmt: skip


def _expected_cache_rollup(
    events: list[UsageEvent], grain: str, key: tuple[str, ...]
) -> dict[tuple[Any, ...], tuple[int, int, int, int, int]]:
    """(cache read count, its sum, cache creation count, its sum, invocations) per bucket and key,
    computed from the events."""
    expected: dict[tuple[Any, ...], list[int]] = {}
    for event in events:
        moment = event.timestamp.astimezone(UTC)
        bucket = {
            "hour": moment.replace(minute=0, second=0, microsecond=0),
            "day": moment.replace(hour=0, minute=0, second=0, microsecond=0),
            "month": moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        }[grain]
        values = {
            "kind": event.kind.value,
            "name": event.name,
            "project_key": event.project_id or "",
            "model_key": event.model or "",
            "status": event.status.value,
        }
        sums = expected.setdefault((bucket, *(values[column] for column in key)), [0] * 5)
        sums[0] += event.cache_read_tokens is not None
        sums[1] += event.cache_read_tokens or 0
        sums[2] += event.cache_creation_tokens is not None
        sums[3] += event.cache_creation_tokens or 0
        sums[4] += 1
    return {bucket_key: tuple(sums) for bucket_key, sums in expected.items()}  # type: ignore[misc]
