"""Usage over calendar time in a time zone: histories bucketed by period, and period reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter
from claude_api.events import Kind
from claude_api.models.filters import MAX_TOP, Period, UsageFilter, check_count, to_enum
from claude_api.models.local_days import day_starts
from claude_api.models.queries._aggregates import (
    PART,
    stats_columns,
    totals_columns,
    totals_fields,
    totals_series,
)
from claude_api.models.queries._answer_cache import cached, kept_while_settled, settled_buckets
from claude_api.models.queries._calendar import (
    calendar_buckets,
    hour_start,
    local_date,
    local_midnight,
    period_range,
    period_start,
    shift,
)
from claude_api.models.queries._numbers import as_int
from claude_api.models.queries._partial_sums import (
    kind_named,
    kinds_of,
    kinds_scope,
    plan,
    recorded_kinds_column,
    usage_parts,
)
from claude_api.models.queries._range_split import split_ranges
from claude_api.models.queries._statement_shapes import Shape, bind, statements
from claude_api.models.queries.stats import errors_by_name
from claude_api.models.results import (
    History,
    HistorySeries,
    PeriodChange,
    Report,
    ReportRow,
    UsageTotals,
)
from claude_api.models.types import UTCDateTime

DEFAULT_BUCKETS = {Period.HOUR: 24, Period.DAY: 30, Period.WEEK: 12, Period.MONTH: 12}


@cached(reads_clock=lambda kw: kw.get("now") is None and kw["filter"].until is None, settles=True)
def usage_by_period(
    session: Session,
    *,
    filter: UsageFilter,
    period: Period,
    now: datetime | None = None,
) -> History:
    """The invocations matching `filter` per local hour, calendar day, ISO week (from Monday) or
    month in `filter.tz`, over [filter.since, filter.until), empty buckets included with zero
    counts.

    The first and last buckets are clipped to the range, so the buckets add up to exactly the
    range. Without `until` the range ends `now` (default: the current time); without `since` it
    starts DEFAULT_BUCKETS periods back. Each bucket holds the `UsageTotals` of the invocations
    that started in it (running ones count as invocations only).

    Raises NotFound when `filter.name` was never recorded; InvalidFilter for a range of more
    than MAX_BUCKETS buckets.
    """
    period = to_enum(Period, period, field="period")
    since, until = _history_range(filter, period, now)
    buckets = calendar_buckets(since, until, period, filter.zone)
    ranged = filter.replace(since=since, until=until)

    scope = kinds_scope(filter)
    found: dict[int, Any] | None = None

    def read_series(count: int) -> tuple[tuple[str, Any], ...]:
        # Read every bucket in one statement, as afresh, and keep the settled ones' columns.
        nonlocal found
        found = _bucket_rows(session, ranged, buckets, scope)
        return tuple(totals_series([found.get(number) for number in range(count)]).items())

    first, leading = settled_part(session, ("history", period), ranged, buckets, read_series)
    if found is None:  # the settled buckets were kept: the others only
        recent = ranged.replace(since=buckets[first].start_at)
        found = _bucket_rows(session, recent, buckets, scope, first)
    whole_shape, whole_values = bind(ranged, plan(ranged))
    totals = session.execute(_range_totals_read(whole_shape), whole_values).one_or_none()
    kind = filter.kind
    if scope is not None:
        kind = kind_named(filter, kinds_of(found.pop(_KINDS_ROW).kinds))
    return assemble_history(
        kind=kind,
        name=filter.name,
        period=period,
        tz=filter.tz,
        since=since,
        until=until,
        buckets=buckets,
        rows=found,
        totals=totals,
        leading=dict(leading) or None,
    )


def settled_part(
    session: Session,
    key: tuple[Any, ...],
    ranged: UsageFilter,
    buckets: Sequence[Any],
    read: Callable[[int], tuple[Any, ...]],
) -> tuple[int, tuple[Any, ...]]:
    """How many leading `buckets` of a history over `ranged` have settled (all but the last at
    most), with what `read(how many)` gives of them, kept across the writes of recent
    invocations under `key`; (0, ()) when nothing may be kept."""
    count = min(settled_buckets(buckets), len(buckets) - 1)
    if not count:
        return 0, ()
    part = ranged.replace(until=buckets[count - 1].end_at)
    kept = kept_while_settled(session, (*key, part), lambda: read(count))
    return (0, ()) if kept is None else (count, kept)


def _bucket_rows(
    session: Session,
    filter: UsageFilter,
    buckets: Sequence[Any],
    scope: tuple[Shape, dict[str, Any]] | None,
    first: int = 0,
) -> dict[int, Any]:
    """The rows of `_history_read` by bucket number: `buckets[first:]` over `filter`'s range."""
    read = buckets[first:]
    intervals = ((bucket.start_at, bucket.end_at) for bucket in read)
    shape, values = bind(filter, split_ranges(intervals, day_starts(session)))
    values.update((f"edge_{number}", bucket.start_at) for number, bucket in enumerate(read[1:]))
    if scope is not None:
        values |= scope[1]
    statement = _history_read(shape, len(read) - 1, scope[0] if scope else None, first)
    return {row.bucket: row for row in session.execute(statement, values)}


def assemble_history(
    *,
    kind: Kind | None,
    name: str | None,
    period: Period,
    tz: str,
    since: datetime,
    until: datetime,
    buckets: Sequence[Any],
    rows: Mapping[int, Any],
    totals: Any,
    leading: Mapping[str, tuple[Any, ...]] | None = None,
) -> History:
    """A `History` of calendar `buckets` from the rows of `totals_columns` read per bucket
    number (`rows`; a bucket without a row has zero counts) and over the whole range;
    `leading`: the `totals_series` of its first buckets, when they were read before."""
    first = len(leading["invocations"]) if leading else 0
    columns = totals_series([rows.get(number) for number in range(first, len(buckets))])
    if leading:
        columns = {field: leading[field] + values for field, values in columns.items()}
    return History(
        kind=kind,
        name=name,
        period=period,
        tz=tz,
        start_at=since,
        end_at=until,
        series=HistorySeries(
            period_start=tuple(bucket.period_start for bucket in buckets),
            start_at=tuple(bucket.start_at for bucket in buckets),
            end_at=tuple(bucket.end_at for bucket in buckets),
            **columns,
        ),
        totals=UsageTotals(**totals_fields(totals)),
    )


_KINDS_ROW = -1  # the `bucket` of the row that holds a name's recorded kinds
_KEYS = ("kind", "name", "model", "project")  # the columns of `usage_parts` that are not `by`


@statements
def _range_totals_read(shape: Shape) -> sa.Select[Any]:
    """The totals of a whole range, in one row."""
    filter, pieces = shape.bound()
    return sa.select(*totals_columns()).select_from(usage_parts(filter, pieces, by=()))


@statements
def _history_read(shape: Shape, edges: int, scope: Shape | None, first: int) -> Any:
    """A row of totals per bucket number (`bucket`, from `first`) with data; and, for a
    `kinds_scope`, a row numbered _KINDS_ROW whose `kinds` holds the recorded kinds."""
    filter, pieces = shape.bound()
    parts = usage_parts(filter, pieces, by=("at",))
    starts = [sa.bindparam(f"edge_{number}", type_=UTCDateTime()) for number in range(edges)]
    index = _bucket_index(PART["at"], starts, first)
    # Bucket in a subquery and group by its column: PostgreSQL would not match a GROUP BY CASE
    # to the same CASE in the select list, their bound parameters being distinct.
    columns = [column for name, column in PART.items() if name not in _KEYS]
    indexed = sa.select(*columns, index.label("bucket")).select_from(parts).subquery("indexed")
    totals = (
        sa.select(indexed.c.bucket, *totals_columns())
        .select_from(indexed)
        .group_by(indexed.c.bucket)
    )
    if scope is None:
        return totals
    kinds = sa.select(
        sa.literal_column(str(_KINDS_ROW), sa.Integer).label("bucket"),
        *(sa.null().label(column.name) for column in totals_columns()),
        recorded_kinds_column(scope),
    )
    return sa.union_all(totals.add_columns(sa.cast(sa.null(), sa.String).label("kinds")), kinds)


def _history_range(
    filter: UsageFilter, period: Period, now: datetime | None
) -> tuple[datetime, datetime]:
    until = filter.until or _now(now)
    since = filter.since
    if since is None and period is Period.HOUR:
        hours = timedelta(hours=DEFAULT_BUCKETS[period] - 1, microseconds=1)
        since = hour_start(until - hours, filter.zone)
    if since is None:
        zone = filter.zone
        last = period_start(local_date(until - timedelta(microseconds=1), zone), period)
        try:
            since = local_midnight(shift(last, period, 1 - DEFAULT_BUCKETS[period]), zone)
        except (OverflowError, ValueError):
            raise InvalidFilter("until", "is out of the supported date range") from None
    if since >= until:
        raise InvalidFilter("since", "must be before until")
    return since, until


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else _aware(now, "now")


def _aware(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidFilter(field, "must carry a time zone offset")
    return moment.astimezone(UTC)


def _bucket_index(timestamp: Any, edges: Sequence[Any], first: int = 0) -> Any:
    """The number of the bucket holding `timestamp`, given the start instants of buckets
    first+1, first+2, ...; a balanced CASE tree keeps the work per row logarithmic in the number
    of buckets, where a flat CASE would test up to MAX_BUCKETS edges."""
    if not edges:
        return sa.literal_column(str(first), sa.Integer)
    middle = len(edges) // 2
    return sa.case(
        (timestamp < edges[middle], _bucket_index(timestamp, edges[:middle], first)),
        else_=_bucket_index(timestamp, edges[middle + 1 :], first + middle + 1),
    )


@cached(reads_clock=lambda kw: kw.get("now") is None and kw.get("on") is None)
def usage_report(
    session: Session,
    *,
    period: Period,
    on: date | None = None,
    filter: UsageFilter = UsageFilter(),
    top_failures: int = 10,
    now: datetime | None = None,
) -> Report:
    """A report of the day, ISO week or month in `filter.tz` holding the local date `on`
    (default: the date of `now`, itself defaulting to the current time), against the same
    stretch of the period before it.

    Like is compared with like: a period not over at `now` is reported so far (`so_far`, its
    totals up to `now`) and compared with the period before up to the same day and time of
    day (the month to the 7th at 10:00 against the month before to the 7th at 10:00, clipped
    to that month's end); a finished period is compared with the whole period before.
    Without `on`, when the current period has no invocation yet, the report is of the latest
    period that has some (`empty_period_start` names the empty one).

    Totals, a row per agent and per skill, the `top_failures` most frequent (name, error
    message) failures, and the change in invocations, total cost and success rate. The filter
    may narrow the invocations (kind, name, project, model, status) but not the range: its
    since/until must be empty. Naming an unrecorded agent is not an error here: its report is
    empty.
    """
    period = to_enum(Period, period, field="period")
    if period is Period.HOUR:
        raise InvalidFilter("period", "a report covers a day, a week or a month, not an hour")
    check_count(top_failures, field="top_failures", maximum=MAX_TOP)
    if filter.since is not None or filter.until is not None:
        raise InvalidFilter("since", "a report covers its period: leave since and until empty")
    zone = filter.zone
    if isinstance(on, datetime):
        on = local_date(_aware(on, "on"), zone)
    moment = _now(now)
    day = on if on is not None else local_date(moment, zone)
    empty_period_start = None
    if on is None:
        latest = _latest_start(session, filter, period_range(day, period, zone)[1], moment)
        if latest is not None:
            empty_period_start = period_start(day, period)
            day = local_date(latest, zone)
    first_day, start_at, end_at = period_range(day, period, zone)
    _, previous_start_at, previous_end_at = period_range(day, period, zone, offset=-1)
    so_far = start_at <= moment < end_at
    until_at = moment if so_far else end_at
    if so_far:
        previous_end_at = _same_point_before(moment, first_day, period, zone)
    current = filter.replace(since=start_at, until=until_at)
    previous = filter.replace(since=previous_start_at, until=previous_end_at)

    shape, values = bind(current, plan(current))
    previous_shape, previous_values = bind(previous, plan(previous), prefix="previous_")
    rows = session.execute(_report_read(shape, previous_shape), values | previous_values).all()
    totals, previous_totals = (
        UsageTotals(**totals_fields(next(row for row in rows if row.part == part)))
        for part in (_TOTALS, _PREVIOUS_TOTALS)
    )
    # Most invocations first, then by name in code point order, then kind.
    named = sorted(
        (row for row in rows if row.part == _BY_NAME),
        key=lambda row: (-as_int(row.invocations), row.name, row.kind),
    )
    by_name = [ReportRow(kind=Kind(row.kind), name=row.name, **totals_fields(row)) for row in named]
    failures = errors_by_name(session, filter=current, limit=top_failures) if top_failures else []
    return Report(
        period=period,
        tz=filter.tz,
        period_start=first_day,
        start_at=start_at,
        end_at=end_at,
        so_far=so_far,
        until_at=until_at,
        previous_start_at=previous_start_at,
        previous_end_at=previous_end_at,
        empty_period_start=empty_period_start,
        totals=totals,
        previous_totals=previous_totals,
        change=_change(previous_totals, totals),
        agents=tuple(row for row in by_name if row.kind is Kind.AGENT),
        skills=tuple(row for row in by_name if row.kind is Kind.SKILL),
        top_failures=tuple(failures),
    )


_TOTALS, _PREVIOUS_TOTALS, _BY_NAME = 0, 1, 2


def _same_point_before(moment: datetime, first_day: date, period: Period, zone: Any) -> datetime:
    """The instant as far into the period before as `moment` is into the period starting on
    `first_day`: the same count of days and the same local time of day, clipped to that
    period's end (March 31 maps to the end of February)."""
    local = moment.astimezone(zone)
    day = shift(first_day, period, -1) + (local.date() - first_day)
    if day >= first_day:
        return local_midnight(first_day, zone)
    return datetime.combine(day, local.time(), tzinfo=zone).astimezone(UTC)


def _latest_start(
    session: Session, filter: UsageFilter, period_start_at: datetime, moment: datetime
) -> datetime | None:
    """When nothing matching `filter` started between `period_start_at` and `moment`, the
    start of the latest invocation before `period_start_at`; None otherwise (or when there is
    none at all), so the current period is reported."""
    whole = filter.replace(since=None, until=moment)
    shape, values = bind(whole, plan(whole))
    latest = session.execute(_latest_read(shape), values).scalar_one_or_none()
    if latest is None or latest >= period_start_at:
        return None
    return latest


@statements
def _latest_read(shape: Shape) -> sa.Select[Any]:
    """The start of the latest invocation in the range, in one row (NULL for none)."""
    filter, pieces = shape.bound()
    parts = usage_parts(filter, pieces, by=())
    return sa.select(sa.func.max(PART["last_seen"]).label("latest")).select_from(parts)


@statements
def _report_read(current: Shape, previous: Shape) -> sa.CompoundSelect:
    """A report's aggregates in one read: `part` tells the totals of the period, those of the
    period before, and a row per (kind, name) of the period."""
    reads = []
    for part, shape in ((_TOTALS, current), (_PREVIOUS_TOTALS, previous)):
        filter, pieces = shape.bound()
        reads.append(
            sa.select(
                sa.literal_column(str(part), sa.Integer).label("part"),
                sa.cast(sa.null(), sa.String(16)).label("kind"),
                sa.cast(sa.null(), sa.String()).label("name"),
                *stats_columns(),
            ).select_from(usage_parts(filter, pieces, by=()))
        )
    filter, pieces = current.bound()
    keys = [PART["kind"], PART["name"]]
    reads.append(
        sa.select(
            sa.literal_column(str(_BY_NAME), sa.Integer).label("part"), *keys, *stats_columns()
        )
        .select_from(usage_parts(filter, pieces))
        .group_by(*keys)
    )
    return sa.union_all(*reads)


def _change(previous: UsageTotals, current: UsageTotals) -> PeriodChange:
    rate_delta = (
        None
        if previous.success_rate is None or current.success_rate is None
        else current.success_rate - previous.success_rate
    )
    cost_delta = (
        None
        if previous.total_cost_usd is None or current.total_cost_usd is None
        else current.total_cost_usd - previous.total_cost_usd
    )
    return PeriodChange(
        invocations_delta=current.invocations - previous.invocations,
        invocations_relative=_relative(
            current.invocations - previous.invocations, previous.invocations
        ),
        total_cost_usd_delta=cost_delta,
        total_cost_usd_relative=_relative(cost_delta, previous.total_cost_usd),
        success_rate_delta=rate_delta,
        success_rate_relative=_relative(rate_delta, previous.success_rate),
    )


def _relative(delta: float | None, previous: float | None) -> float | None:
    if delta is None or not previous:
        return None
    return delta / previous
