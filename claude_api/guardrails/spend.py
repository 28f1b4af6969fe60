"""What a scope (an agent or skill, a project, or everything) spent in a UTC range: one
statement over the rollups of the whole UTC months, days and hours in it, the raw rows of its
edges, and the running invocations, which the rollups do not hold until they finish.

Standard library only: the statement is text with named parameters for the database's own
driver, so the PreToolUse hook runs it on a bare sqlite3 or psycopg connection, and the service
on its SQLAlchemy session (`exec_driver_sql`), with the same answer. Its records are named
tuples: importing dataclasses (and inspect with it) would cost the hook's start a third more.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import UTC, datetime

from claude_api.guardrails.periods import Range, split

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Reader(Protocol):
        """A way to run a statement: the database's dialect (`sqlite` or `postgresql`) and
        its rows (`claude_api.guardrails.dbapi.Connection`, or the service's session)."""

        dialect: str

        def rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]: ...


# SQLAlchemy stores a UTC DateTime in SQLite as this text, which compares in time order.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
TABLES = {"agent": ("agent_usage", "agent_name"), "skill": ("skill_usage", "skill_name")}
_TOKENS = "input_sum + output_sum + cache_read_sum + cache_creation_sum"
_RAW_TOKENS = (
    "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) + COALESCE(cache_read_tokens, 0) "
    "+ COALESCE(cache_creation_tokens, 0)"
)


class Scope(namedtuple("Scope", "kind name project_id", defaults=(None, None, None))):
    """Whose invocations count: one agent or skill (`kind` and `name`), in one project or in
    all (`project_id` None); with neither kind nor name, every agent and skill. Each field is
    text or None."""

    __slots__ = ()


class Spend(namedtuple("Spend", "invocations cost_usd unpriced_invocations tokens")):
    """What the invocations of a scope spent: `cost_usd` (float) sums the costs they report
    (None when there are invocations and none reports one; `unpriced_invocations` says how
    many report none); `tokens` is input + output + cache read + cache creation tokens. The
    counts are ints."""

    __slots__ = ()


def read_spend(reader: Reader, scope: Scope, start: datetime, end: datetime) -> Spend:
    """What `scope` spent on invocations started in [start, end), running ones included."""
    sql, params = spend_statement(scope, start, end, reader.dialect)
    invocations, priced, cost, tokens = reader.rows(sql, params)[0]
    invocations, priced = int(invocations or 0), int(priced or 0)
    return Spend(
        invocations=invocations,
        cost_usd=None if invocations and not priced else float(cost or 0.0),
        unpriced_invocations=invocations - priced,
        tokens=int(tokens or 0),
    )


def spend_statement(
    scope: Scope, start: datetime, end: datetime, dialect: str
) -> tuple[str, dict[str, Any]]:
    """The statement answering (invocations, priced invocations, cost, tokens) for `scope` over
    [start, end), and its parameters, for `dialect`."""
    statement = _Statement(dialect)
    rollups, raw = split(start, end)
    parts = [
        _rollup_part(statement, scope, grain, piece)
        for grain, pieces in rollups.items()
        for piece in pieces
    ]
    kinds = [scope.kind] if scope.kind is not None else list(TABLES)
    for kind in kinds:
        parts += [_raw_part(statement, scope, kind, piece, running=False) for piece in raw]
        parts.append(_raw_part(statement, scope, kind, (start, end), running=True))
    union = "\nUNION ALL\n".join(parts)
    sql = (
        f"SELECT SUM(invocations), SUM(priced), SUM(cost), SUM(tokens) FROM (\n{union}\n) AS parts"
    )
    return sql, statement.params


class _Statement:
    """Parameters named in the driver's style (`:p0` for sqlite3, `%(p0)s` for psycopg), with
    times as the column stores them."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {dialect!r}")
        self.dialect = dialect
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        key = f"p{len(self.params)}"
        if isinstance(value, datetime):
            value = value.astimezone(UTC)
            if self.dialect == "sqlite":
                value = value.strftime(SQLITE_TIME)
        self.params[key] = value
        return f":{key}" if self.dialect == "sqlite" else f"%({key})s"

    def unindexed(self, column: str) -> str:
        # SQLite's unary plus keeps it from reading a column's index instead of a better one.
        return f"+{column}" if self.dialect == "sqlite" else column


def _rollup_part(statement: _Statement, scope: Scope, grain: str, piece: Range) -> str:
    conditions = [
        f"grain = {statement.param(grain)}",
        f"bucket_start >= {statement.param(piece[0])}",
        f"bucket_start < {statement.param(piece[1])}",
    ]
    if scope.kind is not None:
        conditions.append(f"kind = {statement.param(scope.kind)}")
    if scope.name is None and scope.project_id is None:
        table = "usage_kind_rollup"  # one row per kind and bucket
    else:
        table = "usage_rollup"
        if scope.name is not None:
            conditions.append(f"name = {statement.param(scope.name)}")
        if scope.project_id is not None:
            conditions.append(f"project_key = {statement.param(scope.project_id)}")
    return (
        f"SELECT SUM(invocations) AS invocations, SUM(cost_count) AS priced, "
        f"SUM(cost_sum) AS cost, SUM({_TOKENS}) AS tokens FROM {table} "
        f"WHERE {' AND '.join(conditions)}"
    )


def _raw_part(
    statement: _Statement, scope: Scope, kind: str, piece: Range, *, running: bool
) -> str:
    table, name_column = TABLES[kind]
    conditions = [
        f"timestamp >= {statement.param(piece[0])}",
        f"timestamp < {statement.param(piece[1])}",
    ]
    if running:
        # A literal, so SQLite sees that the partial index on running rows applies; the other
        # columns must not lure it to their own indexes.
        conditions.append("status = 'running'")
        name, project = statement.unindexed(name_column), statement.unindexed("project_id")
    else:
        conditions.append("status <> 'running'")
        name, project = name_column, "project_id"
    if scope.name is not None:
        conditions.append(f"{name} = {statement.param(scope.name)}")
    if scope.project_id is not None:
        conditions.append(f"{project} = {statement.param(scope.project_id)}")
    return (
        f"SELECT COUNT(*) AS invocations, COUNT(cost_usd) AS priced, SUM(cost_usd) AS cost, "
        f"SUM({_RAW_TOKENS}) AS tokens FROM {table} WHERE {' AND '.join(conditions)}"
    )
