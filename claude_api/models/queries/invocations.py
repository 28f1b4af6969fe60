"""Every invocation, agents and skills alike, in start order: one page at a time (the API's
listing), all of them as a stream (what an export writes, in constant memory), and their count.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from claude_api.errors import InvalidFilter
from claude_api.events import Kind
from claude_api.exports import COLUMNS, FORMULA_STARTS, TEXT_COLUMNS
from claude_api.models.filters import UsageFilter, check_limit, to_enum
from claude_api.models.queries._pagination import decode_cursor, make_page
from claude_api.models.queries._raw_rows import usage_fields, usage_rows
from claude_api.models.results import InvocationRecord, Page

_INVOCATIONS_LISTING = "invocations"
STREAM_BATCH = 5000  # rows read per statement by iter_invocations: memory stays this flat


@dataclass(frozen=True)
class _Key:
    """Where a page resumes: after the row with this (timestamp, kind, event id)."""

    timestamp: datetime
    kind: Kind
    event_id: UUID


def list_invocations(
    session: Session,
    *,
    filter: UsageFilter = UsageFilter(),
    limit: int = 50,
    after: str | None = None,
) -> Page[InvocationRecord]:
    """The invocations matching `filter` (both kinds when `filter.kind` is None), in start
    order, ties broken by kind (agent before skill), then event id: the order of
    `list_task_usage`. One page of `limit` at a time; pass a page's `next_cursor` as `after`.

    A page costs the same however deep it is: the cursor holds the last row's sort key and each
    table is read from it along its timestamp index. Rows recorded meanwhile with a later start
    show up on later pages. Raises InvalidFilter for a bad limit or cursor.
    """
    check_limit(limit)
    key = _decode(after) if after is not None else None
    statement = _statement(filter, key, limit + 1)
    if statement is None:
        return Page(items=(), next_cursor=None)
    items = [_record(row) for row in session.execute(statement)]
    return make_page(
        items,
        limit=limit,
        listing=_INVOCATIONS_LISTING,
        key=lambda item: (item.timestamp.isoformat(), item.kind.value, str(item.event_id)),
    )


def iter_invocations(
    session: Session, *, filter: UsageFilter = UsageFilter(), batch: int = STREAM_BATCH
) -> Iterator[InvocationRecord]:
    """Every invocation matching `filter`, in the order of `list_invocations`, read `batch` rows
    at a time along the same keyset (each statement resumes after the last row of the one
    before), so memory stays flat however many rows there are and no statement holds a cursor
    open for long. Rows recorded meanwhile with a later start than the last row read are
    included."""
    for rows in _batches(session, filter, batch):
        yield from map(_record, rows)


def iter_invocation_rows(
    session: Session,
    *,
    filter: UsageFilter = UsageFilter(),
    escape_formulas: bool = False,
    batch: int = STREAM_BATCH,
) -> Iterator[Sequence[Any]]:
    """The invocations of `iter_invocations` as the export writes them: a row of plain values
    per invocation, in the order of `claude_api.exports.COLUMNS`, enums as their wire values,
    ids as text and times in ISO 8601 with their offset; with `escape_formulas`, the text cells
    a spreadsheet would run as a formula start with a quote (`claude_api.exports.escape_formula`).

    The database writes ids and times as text and each usage table is read by one statement
    in timestamp order, `batch` rows at a time; the rows of an instant are put in event id
    order here and the two tables merged. No Python object per id or time and no sort of both
    tables together, which an export of millions of rows feels. The rows are those of the
    session's transaction."""
    kinds = [filter.kind] if filter.kind is not None else list(Kind)
    tables = [
        _in_export_order(
            _raw_batches(
                session, _export_statement(filter.replace(kind=kind), escape_formulas), batch
            )
        )
        for kind in kinds
    ]
    # The ISO texts of UTC times sort as the times do, and ids' texts as the ids.
    yield from heapq.merge(*tables, key=_EXPORT_ORDER)


def _raw_batches(
    session: Session, statement: sa.Select[Any], batch: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of `statement` as lists of `batch` of the database driver's tuples: the export
    reads millions of rows, and SQLAlchemy's result rows would cost more than the driver's
    work. The statement must only select columns needing no conversion."""
    connection = session.connection()
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    params = {}
    for name, value in compiled.construct_params().items():
        convert = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        params[name] = convert(value) if convert is not None else value
    driver = connection.connection.dbapi_connection
    assert driver is not None
    if dialect.name == "postgresql":
        # A server-side cursor: PostgreSQL sends the rows `batch` at a time, not all at once.
        cursor = driver.cursor(name=f"export_{id(statement)}")
    else:
        cursor = driver.cursor()
    try:
        if compiled.positiontup is not None:
            cursor.execute(compiled.string, [params[name] for name in compiled.positiontup])
        else:
            cursor.execute(compiled.string, params)
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        # A stream dropped midway may end after its session: the cursor went with it.
        with contextlib.suppress(dialect.loaded_dbapi.Error):
            cursor.close()


def _in_export_order(batches: Iterator[list[tuple[Any, ...]]]) -> Iterator[tuple[Any, ...]]:
    """The rows of one table's batches in timestamp order, each instant's rows put in event id
    order. Sorting a batch of rows already in timestamp order costs Python less than the
    database's sort of each instant's rows; the rows of the batch's last instant wait for the
    next batch, which may hold more of them."""
    waiting: list[tuple[Any, ...]] = []
    for rows in batches:
        rows = waiting + rows
        rows.sort(key=_EXPORT_ORDER)
        last = bisect.bisect_left(rows, _TIMESTAMP(rows[-1]), key=_TIMESTAMP)
        yield from rows[:last]
        waiting = rows[last:]
    yield from waiting


_EXPORT_ORDER = operator.itemgetter(
    COLUMNS.index("timestamp"), COLUMNS.index("kind"), COLUMNS.index("event_id")
)
_TIMESTAMP = operator.itemgetter(COLUMNS.index("timestamp"))


def _export_statement(scope: UsageFilter, escape_formulas: bool) -> sa.Select[Any]:
    """One table's rows in export columns, in timestamp order."""
    rows = usage_rows(scope)
    columns = []
    for name in COLUMNS:
        column: Any = rows.c[name]
        if name in ("event_id", "parent_id"):
            column = uuid_text(column)
        elif name in ("timestamp", "finished_at"):
            column = utc_text(column)
        elif escape_formulas and name in TEXT_COLUMNS:
            column = formula_escaped(column)
        columns.append(column.label(name))
    return sa.select(*columns).order_by(rows.c.timestamp)


class uuid_text(FunctionElement[str]):  # lower case: it reads like the SQL it stands for
    """A UUID column as its text, 8-4-4-4-12 lower-case hex digits (`str(uuid)`)."""

    inherit_cache = True
    type = sa.String()


@compiles(uuid_text)
def _compile_uuid_text(element: uuid_text, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds a UUID as its 32 hex digits.
    digits = compiler.process(element.clauses, **kw)
    pieces = [f"substr({digits}, {start}, {length})" for start, length in _UUID_PIECES]
    return " || '-' || ".join(pieces)


_UUID_PIECES = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


@compiles(uuid_text, "postgresql")
def _compile_uuid_text_postgresql(element: uuid_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


class utc_text(FunctionElement[str]):  # lower case: it reads like the SQL it stands for
    """A UTC time column as `datetime.isoformat()` writes it: 2026-05-01T12:00:00+00:00, with
    six digits of fractional seconds unless they are all zero."""

    inherit_cache = True
    type = sa.String()


@compiles(utc_text)
def _compile_utc_text(element: utc_text, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds a UTC time as '2026-05-01 12:00:00.000000'.
    time = compiler.process(element.clauses, **kw)
    return f"replace(replace({time}, ' ', 'T'), '.000000', '') || '+00:00'"


@compiles(utc_text, "postgresql")
def _compile_utc_text_postgresql(element: utc_text, compiler: SQLCompiler, **kw: Any) -> str:
    time = compiler.process(element.clauses, **kw)
    text = f"""to_char({time} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')"""
    return f"replace({text}, '.000000', '') || '+00:00'"


class formula_escaped(FunctionElement[str]):  # lower case: it reads like the SQL it stands for
    """A text column with a quote in front of the values a spreadsheet would run as a
    formula (`claude_api.exports.escape_formula`)."""

    inherit_cache = True
    type = sa.String()


@compiles(formula_escaped)
def _compile_formula_escaped(element: formula_escaped, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    character = "chr" if compiler.dialect.name == "postgresql" else "char"
    starts = ", ".join(
        f"'{start}'" if start.isprintable() else f"{character}({ord(start)})"
        for start in FORMULA_STARTS
    )
    return f"CASE WHEN substr({text}, 1, 1) IN ({starts}) THEN '''' || {text} ELSE {text} END"


def _batches(session: Session, filter: UsageFilter, batch: int) -> Iterator[Sequence[Any]]:
    key = None
    while True:
        statement = _statement(filter, key, batch)
        if statement is None:
            return
        rows = session.execute(statement).all()
        yield rows
        if len(rows) < batch:
            return
        last = rows[-1]
        key = _Key(last.timestamp, Kind(last.kind), last.event_id)


def _statement(filter: UsageFilter, key: _Key | None, rows: int) -> sa.Select[Any] | None:
    """The next `rows` invocations after `key` in listing order; None when none can follow."""
    kinds = [filter.kind] if filter.kind is not None else list(Kind)
    found = (_branch(filter, kind, key, rows) for kind in kinds)
    branches = [branch for branch in found if branch is not None]
    if not branches:
        return None
    if len(branches) == 1:
        return branches[0]
    # Each branch is already ordered and cut to `rows`, so merging them sorts at most twice
    # that instead of both tables' remainders.
    merged = sa.union_all(*(sa.select(branch.subquery()) for branch in branches))
    page = merged.subquery("page")
    return sa.select(page).order_by(page.c.timestamp, page.c.kind, page.c.event_id).limit(rows)


def count_invocations(session: Session, *, filter: UsageFilter = UsageFilter()) -> int:
    """How many invocations match `filter`: the rows `list_invocations` pages through."""
    rows = usage_rows(filter)
    return int(session.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one())


def _branch(filter: UsageFilter, kind: Kind, key: _Key | None, rows: int) -> sa.Select[Any] | None:
    """One table's next `rows` rows after `key`, or None when none can follow it."""
    scope = filter.replace(kind=kind)
    if key is not None:
        if scope.until is not None and key.timestamp >= scope.until:
            return None
        if scope.since is None or key.timestamp > scope.since:
            # The cursor's start as the lower bound of the range, where the index serves it.
            scope = scope.replace(since=key.timestamp)
    table = usage_rows(scope)
    statement = sa.select(table)
    if key is not None and kind.value <= key.kind.value:
        # Rows starting at the cursor's instant follow it only if they sort after it by kind,
        # then event id; a later kind follows at any instant from the cursor's on.
        later = table.c.timestamp > key.timestamp
        if kind is key.kind:
            same_instant = sa.and_(
                table.c.timestamp == key.timestamp, table.c.event_id > key.event_id
            )
            later = sa.or_(later, same_instant)
        statement = statement.where(later)
    return statement.order_by(table.c.timestamp, table.c.event_id).limit(rows)


def _decode(cursor: str) -> _Key:
    moment, kind, event_id = decode_cursor(_INVOCATIONS_LISTING, cursor, 3)
    try:
        timestamp = datetime.fromisoformat(moment)
        parsed_id = UUID(event_id)
    except ValueError:
        raise InvalidFilter("after", "is not a cursor of this listing") from None
    if timestamp.utcoffset() is None:
        raise InvalidFilter("after", "is not a cursor of this listing")
    return _Key(timestamp, to_enum(Kind, kind, field="after"), parsed_id)


def _record(row: Any) -> InvocationRecord:
    return InvocationRecord(**usage_fields(row), task_id=row.task_id)
