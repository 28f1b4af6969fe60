"""Statistics per agent or skill, leaderboards, failure counts and the list of names."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.events import Kind
from claude_api.models.filters import (
    MAX_TOP,
    LeaderboardMetric,
    UsageFilter,
    check_count,
    check_limit,
    to_enum,
)
from claude_api.models.queries._aggregates import (
    PART,
    ErrorKey,
    aggregate_select,
    top_errors_of,
    totals_columns,
    totals_fields,
)
from claude_api.models.queries._answer_cache import cached
from claude_api.models.queries._numbers import as_float
from claude_api.models.queries._pagination import decode_cursor, make_page
from claude_api.models.queries._partial_sums import (
    counted_pieces,
    counting_plan,
    error_parts,
    kind_named,
    kinds_of,
    kinds_scope,
    plan,
    recorded_kinds_column,
    rollups_purged_before,
    settled_and_rest,
    usage_parts,
)
from claude_api.models.queries._percentiles import (
    duration_percentiles,
    no_percentiles,
)
from claude_api.models.queries._range_split import Pieces
from claude_api.models.queries._raw_rows import bytewise
from claude_api.models.queries._statement_shapes import Shape, bind, statements
from claude_api.models.results import ErrorCount, LeaderboardEntry, Page, UsageStats

DEFAULT_TOP_ERRORS = 5
# Leaderboard metrics made of sums of counts, which may read buckets to subtract.
_COUNTED_METRICS = {
    LeaderboardMetric.USAGE,
    LeaderboardMetric.SUCCESS_RATE,
    LeaderboardMetric.TOKENS,
}
_LEADERBOARD = (
    "invocations", "success_rate", "total_cost_usd", "unpriced_invocations",
    "avg_duration_seconds", "input_tokens", "output_tokens", "cache_creation_tokens",
    "cache_read_tokens",
)  # fmt: skip
_STATS_LISTING = "stats_by_name"
# Leaderboard metrics that are duration percentiles, ranked from the rollups' sketch bins.
_PERCENTILE_METRICS = {
    LeaderboardMetric.P50: "p50_duration_seconds",
    LeaderboardMetric.P95: "p95_duration_seconds",
}
_EVERY_NAME = 2**31 - 1  # no limit: percentiles rank every name that qualifies


@cached(settles=True)
def usage_stats(
    session: Session, *, filter: UsageFilter, top_errors: int = DEFAULT_TOP_ERRORS
) -> UsageStats:
    """Statistics of every invocation matching `filter`: of one agent or skill when it names
    one, of everything matched otherwise.

    Running rows count as invocations; only finished (completed or failed) rows feed the success
    rate and the durations (average and nearest-rank p50/p95/p99, within 1% of the exact
    values when they come from the rollups). `top_errors` limits the most
    frequent failure messages, by (kind, name, message). With kind None a name recorded both
    as an agent and as a skill is aggregated across both, and `kind` is None.

    Raises NotFound when `filter.name` was never recorded (a name with no row in the range
    gives zero counts); InvalidFilter for a bad `top_errors`.
    """
    check_count(top_errors, field="top_errors", maximum=MAX_TOP)
    scope = kinds_scope(filter)
    shape, values = bind(filter, plan(filter))
    if scope is not None:
        values |= scope[1]
    row = session.execute(_totals_read(shape, scope[0] if scope else None), values).one()
    kind = kind_named(filter, kinds_of(row.kinds)) if scope is not None else filter.kind
    counting = counted_pieces(filter, row.rollups_purged_before)
    percentiles = duration_percentiles(session, filter, by_name=False, pieces=counting)
    errors = _top_errors(session, filter, top_errors, counting) if top_errors else []
    return _stats(
        row,
        kind=kind,
        name=filter.name,
        top_errors=errors,
        percentiles=percentiles.get(None) or no_percentiles(),
    )


@cached(settles=True)
def stats_by_name(
    session: Session,
    *,
    filter: UsageFilter = UsageFilter(),
    limit: int = 50,
    after: str | None = None,
    top_errors: int = DEFAULT_TOP_ERRORS,
) -> Page[UsageStats]:
    """`usage_stats` of every (kind, name) with an invocation matching `filter`, one page of
    `limit` at a time, ordered by name (code point order), then kind (agent before skill).

    Pass a page's `next_cursor` as `after` for the next page. Raises InvalidFilter for a bad
    `limit`, `top_errors` or cursor.
    """
    check_limit(limit)
    check_count(top_errors, field="top_errors", maximum=MAX_TOP)
    shape, values = bind(filter, plan(filter))
    if after is not None:
        kind, name = decode_cursor(_STATS_LISTING, after, 2)
        to_enum(Kind, kind, field="after")
        values.update(after_kind=kind, after_name=name)
    found = session.execute(_names_read(shape, limit, after is not None), values).all()
    names = [row.name for row in found[:limit]]
    counting = counting_plan(session, filter)
    errors = _errors_per_name(session, filter, names, top_errors, counting)
    percentiles = duration_percentiles(session, filter, by_name=True, names=names, pieces=counting)
    items = [
        _stats(
            row,
            kind=Kind(row.kind),
            name=row.name,
            top_errors=errors[row.kind, row.name],
            percentiles=percentiles.get((row.kind, row.name)) or no_percentiles(),
        )
        for row in found
    ]
    return make_page(
        items,
        limit=limit,
        listing=_STATS_LISTING,
        key=lambda stats: (str(stats.kind), str(stats.name)),
    )


@cached(settles=True)
def errors_by_name(
    session: Session, *, filter: UsageFilter = UsageFilter(), limit: int = 10
) -> list[ErrorCount]:
    """The most frequent failures among the invocations matching `filter`: failed rows with an
    error message, counted per (kind, name, message), most frequent first, ties broken by name,
    kind and message."""
    check_limit(limit, maximum=MAX_TOP)
    return _top_errors(session, filter, limit, counting_plan(session, filter))


def _top_errors(
    session: Session, filter: UsageFilter, limit: int, pieces: Pieces
) -> list[ErrorCount]:
    return top_errors_of(_error_counts(session, filter, pieces), limit)


def _errors_per_name(
    session: Session, filter: UsageFilter, names: list[str], limit: int, pieces: Pieces
) -> defaultdict[tuple[str, str], list[ErrorCount]]:
    errors: defaultdict[tuple[str, str], list[ErrorCount]] = defaultdict(list)
    if not names or not limit:
        return errors
    per_name: defaultdict[tuple[str, str], dict[ErrorKey, int]] = defaultdict(dict)
    for key, count in _error_counts(session, filter, pieces, sorted(set(names))).items():
        per_name[key[0], key[1]][key] = count
    for name, counts in per_name.items():
        errors[name] = top_errors_of(counts, limit)
    return errors


def _error_counts(
    session: Session, filter: UsageFilter, pieces: Pieces, names: list[str] | None = None
) -> Counter[ErrorKey]:
    """The failures matching `filter` (of `names` when given) counted per (kind, name,
    message); those of its settled part (`settled_range`) kept across writes of recent ones."""

    def counted(settled: UsageFilter, pieces: Pieces) -> tuple[tuple[ErrorKey, int], ...]:
        return tuple(_counted_errors(session, settled, pieces, names).items())

    listed = tuple(names) if names is not None else None
    found = settled_and_rest(session, filter, ("error counts", listed), counted)
    if found is None:
        return _counted_errors(session, filter, pieces, names)
    kept, rest = found
    counts = Counter(dict(kept))
    counts.update(_counted_errors(session, filter, rest, names))
    return counts


def _counted_errors(
    session: Session, filter: UsageFilter, pieces: Pieces, names: list[str] | None
) -> Counter[ErrorKey]:
    shape, values = bind(filter, pieces)
    if names is not None:
        values["names"] = names
    found = session.execute(_errors_read(shape, names is not None), values)
    return Counter({(row.kind, row.name, row.error_message): int(row.count) for row in found})


@statements
def _totals_read(shape: Shape, scope: Shape | None) -> sa.Select[Any]:
    """The `stats_columns` of every invocation of `shape` in one row, with the recorded kinds
    of a `kinds_scope` (`kinds`) and the purge state (`rollups_purged_before`)."""
    filter, pieces = shape.bound()
    statement = aggregate_select(usage_parts(filter, pieces, by=()), by_name=False)
    kinds = recorded_kinds_column(scope) if scope is not None else sa.null().label("kinds")
    return statement.add_columns(kinds, rollups_purged_before())


@statements
def _names_read(shape: Shape, limit: int, resumed: bool) -> sa.Select[Any]:
    filter, pieces = shape.bound()
    where = []
    if resumed:
        name = sa.bindparam("after_name", type_=sa.String())
        where.append(
            sa.or_(
                bytewise(PART["name"]) > name,
                sa.and_(
                    PART["name"] == name,
                    PART["kind"] > sa.bindparam("after_kind", type_=sa.String()),
                ),
            )
        )
    statement = aggregate_select(usage_parts(filter, pieces), by_name=True, where=where)
    keys = statement.selected_columns
    return statement.order_by(bytewise(keys.name), keys.kind).limit(limit + 1)


@statements
def _errors_read(shape: Shape, named: bool) -> sa.Select[Any]:
    """Failures counted per (kind, name, message), among the bind parameter `names` when
    `named`."""
    filter, pieces = shape.bound()
    c = error_parts(filter, pieces).c
    where = [c.name.in_(sa.bindparam("names", expanding=True))] if named else []
    return (
        sa.select(c.kind, c.name, c.error_message, sa.func.sum(c.count).label("count"))
        .where(*where)
        .group_by(c.kind, c.name, c.error_message)
    )


def _stats(
    row: Any,
    *,
    kind: Kind | None,
    name: str | None,
    top_errors: list[ErrorCount],
    percentiles: dict[str, float | None],
) -> UsageStats:
    return UsageStats(
        kind=kind,
        name=name,
        **totals_fields(row),
        avg_input_tokens=as_float(row.avg_input_tokens),
        avg_output_tokens=as_float(row.avg_output_tokens),
        **percentiles,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        top_errors=tuple(top_errors),
    )


@cached(settles=True)
def leaderboard(
    session: Session,
    *,
    filter: UsageFilter = UsageFilter(),
    metric: LeaderboardMetric = LeaderboardMetric.USAGE,
    limit: int = 10,
    min_invocations: int = 1,
) -> list[LeaderboardEntry]:
    """The top `limit` agents and skills matching `filter` by `metric`, highest first: usage
    (invocations), cost (total USD), success_rate, duration (average of finished runs: the
    slowest first), p50 or p95 (that percentile of the durations of finished runs, as
    `usage_stats` gives it: the slowest first) or tokens (total input + output + cache
    creation + cache read).

    Only names with at least `min_invocations` matching invocations (running ones included)
    take part, and a name without a value for the metric (no finished run for success_rate,
    no measured duration, no reported cost) is left out. Ties are broken by name, then kind;
    ranks run 1..n without gaps.
    """
    metric = to_enum(LeaderboardMetric, metric, field="metric")
    check_limit(limit, maximum=MAX_TOP)
    check_count(min_invocations, field="min_invocations")
    if metric in _PERCENTILE_METRICS:
        return _percentile_leaderboard(session, filter, metric, limit, min_invocations)
    counted = metric in _COUNTED_METRICS
    shape, values = bind(filter, counting_plan(session, filter) if counted else plan(filter))
    values["min_invocations"] = min_invocations
    statement = _leaderboard_read(shape, metric, limit)
    return [
        LeaderboardEntry(
            rank=rank,
            kind=Kind(row.kind),
            name=row.name,
            metric=metric,
            value=float(row.value),
            invocations=int(row.invocations),
            unpriced_invocations=int(row.unpriced_invocations),
        )
        for rank, row in enumerate(session.execute(statement, values), start=1)
    ]


def _percentile_leaderboard(
    session: Session,
    filter: UsageFilter,
    metric: LeaderboardMetric,
    limit: int,
    min_invocations: int,
) -> list[LeaderboardEntry]:
    """The names with enough invocations, ranked by a duration percentile read from the same
    bins (and raw edges) as their statistics."""
    pieces = counting_plan(session, filter)
    shape, values = bind(filter, pieces)
    values["min_invocations"] = min_invocations
    counted = session.execute(
        _leaderboard_read(shape, LeaderboardMetric.USAGE, _EVERY_NAME), values
    )
    rows = {(row.kind, row.name): row for row in counted}
    if not rows:
        return []
    percentiles = duration_percentiles(
        session, filter, by_name=True, names={name for _, name in rows}, pieces=pieces
    )
    label = _PERCENTILE_METRICS[metric]
    ranked = sorted(
        (
            (value, kind, name)
            for (kind, name), found in percentiles.items()
            if (kind, name) in rows and (value := found[label]) is not None
        ),
        key=lambda entry: (-entry[0], entry[2], entry[1]),
    )
    return [
        LeaderboardEntry(
            rank=rank,
            kind=Kind(kind),
            name=name,
            metric=metric,
            value=float(value),
            invocations=int(rows[kind, name].invocations),
            unpriced_invocations=int(rows[kind, name].unpriced_invocations),
        )
        for rank, (value, kind, name) in enumerate(ranked[:limit], start=1)
    ]


@statements
def _leaderboard_read(shape: Shape, metric: LeaderboardMetric, limit: int) -> sa.Select[Any]:
    filter, pieces = shape.bound()
    # Only what the metrics need: with buckets to subtract, only sums of counts are exact.
    keys = [PART["kind"], PART["name"]]
    totals = (
        sa.select(*keys, *(column for column in totals_columns() if column.name in _LEADERBOARD))
        .select_from(usage_parts(filter, pieces))
        .group_by(*keys)
        .subquery("totals")
    )
    c = totals.c
    value = {
        LeaderboardMetric.USAGE: c.invocations,
        LeaderboardMetric.COST: c.total_cost_usd,
        LeaderboardMetric.SUCCESS_RATE: c.success_rate,
        LeaderboardMetric.DURATION: c.avg_duration_seconds,
        LeaderboardMetric.TOKENS: _known_tokens(
            c.input_tokens, c.output_tokens, c.cache_creation_tokens, c.cache_read_tokens
        ),
    }[metric]
    minimum = sa.bindparam("min_invocations", type_=sa.BigInteger())
    return (
        sa.select(c.kind, c.name, value.label("value"), c.invocations, c.unpriced_invocations)
        # Above 0: a name whose only buckets were subtracted again has no invocation here.
        .where(c.invocations >= minimum, c.invocations > 0, value.is_not(None))
        .order_by(value.desc(), bytewise(c.name), c.kind)
        .limit(limit)
    )


def _known_tokens(*counts: Any) -> Any:
    # The sum of the token counts known; NULL (not ranked) when none is.
    known = sum((sa.func.coalesce(count, 0) for count in counts), sa.literal_column("0"))
    return sa.case((sa.func.coalesce(*counts).is_(None), sa.null()), else_=known)


@cached()
def list_names(
    session: Session, *, kind: Kind | None = None, project_id: str | None = None
) -> list[str]:
    """Every agent or skill name ever recorded (both when `kind` is None), in `project_id`'s
    invocations only when it is given, each once, in code point order."""
    kind = to_enum(Kind, kind, field="kind") if kind is not None else None
    scope = UsageFilter(kind=kind, project_id=project_id)
    shape, values = bind(scope, plan(scope))
    return list(session.execute(_list_names_read(shape), values).scalars())


@statements
def _list_names_read(shape: Shape) -> sa.Select[Any]:
    filter, pieces = shape.bound()
    name = PART["name"]
    parts = usage_parts(filter, pieces)
    return sa.select(name).select_from(parts).group_by(name).order_by(bytewise(name))
