"""Calendar periods in an IANA time zone, as UTC instants: hours, days, ISO weeks and months.

Edges are computed in Python with zoneinfo, so a bucket spans a local calendar day even when
that day lasts 23 or 25 hours, and an hour runs from one local hh:00 to the next; the database
only compares UTC timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from claude_api.errors import InvalidFilter
from claude_api.models.filters import MAX_BUCKETS, Period


@dataclass(frozen=True)
class Bucket:
    """A calendar period starting on the local date `period_start`, clipped to a range."""

    period_start: date
    start_at: datetime
    end_at: datetime


def period_start(day: date, period: Period) -> date:
    """The first local date of the period holding `day` (weeks start on Monday)."""
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day


def shift(start: date, period: Period, count: int) -> date:
    """The first date of the period `count` periods after the one starting at `start`."""
    if period is Period.MONTH:
        year, month = divmod(start.year * 12 + start.month - 1 + count, 12)
        return date(year, month + 1, 1)
    return start + timedelta(days=count * (7 if period is Period.WEEK else 1))


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which `day` begins in `zone`.

    fold=0 is right in both DST corner cases: a midnight skipped by a spring-forward maps to the
    transition itself, and a midnight repeated by a fall-back to its first occurrence.
    """
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The date in `zone` at the aware `instant`."""
    return instant.astimezone(zone).date()


def period_range(
    day: date, period: Period, zone: ZoneInfo, offset: int = 0
) -> tuple[date, datetime, datetime]:
    """The period `offset` periods after the one holding the local `day` (-1: the one before):
    its first date and its [start, end) in UTC."""
    try:
        start = shift(period_start(day, period), period, offset)
        return start, local_midnight(start, zone), local_midnight(shift(start, period, 1), zone)
    except (OverflowError, ValueError):
        raise InvalidFilter("on", "is out of the supported date range") from None


def calendar_buckets(
    since: datetime, until: datetime, period: Period, zone: ZoneInfo, *, maximum: int = MAX_BUCKETS
) -> list[Bucket]:
    """The periods meeting [since, until), in order, each clipped to the range; a period with no
    instant at all (a local date skipped when a zone changed its offset) is left out.

    Raises InvalidFilter("since") when there would be more than `maximum` of them.
    """
    if period is Period.HOUR:
        return _hour_buckets(since, until, zone, maximum)
    buckets: list[Bucket] = []
    try:
        start = period_start(local_date(since, zone), period)
        start_at = local_midnight(start, zone)
        while start_at < until:
            if len(buckets) == maximum:
                raise InvalidFilter(
                    "since", f"the range holds more than {maximum} {period.value} buckets"
                )
            following = shift(start, period, 1)
            end_at = local_midnight(following, zone)
            # A local date that never happened (Samoa skipped 2011-12-30) has no instant.
            if end_at > start_at:
                buckets.append(Bucket(start, max(start_at, since), min(end_at, until)))
            start, start_at = following, end_at
    except (OverflowError, ValueError):
        raise InvalidFilter("until", "is out of the supported date range") from None
    return buckets


# Every UTC offset in use since 1970 is a whole number of quarter hours, so every local hh:00
# falls on a UTC quarter hour.
_QUARTER = timedelta(minutes=15)


def hour_start(instant: datetime, zone: ZoneInfo) -> datetime:
    """The latest local hh:00 in `zone` at or before the aware `instant`, in UTC."""
    moment = instant.astimezone(UTC)
    candidate = moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
    for _ in range(8):  # a local hour starts within two hours back, whatever the offset
        if _starts_hour(candidate, zone):
            return candidate
        candidate -= _QUARTER
    return moment.replace(minute=0, second=0, microsecond=0)


def _starts_hour(instant: datetime, zone: ZoneInfo) -> bool:
    local = instant.astimezone(zone)
    return local.minute == 0 and local.second == 0


def _hour_buckets(since: datetime, until: datetime, zone: ZoneInfo, maximum: int) -> list[Bucket]:
    """The local hours meeting [since, until): each from a local hh:00 to the next, so an hour
    that a clock change skips merges with the one before and a repeated hour comes twice."""
    buckets: list[Bucket] = []
    try:
        start_at = hour_start(since, zone)
        while start_at < until:
            if len(buckets) == maximum:
                raise InvalidFilter(
                    "since", f"the range holds more than {maximum} {Period.HOUR.value} buckets"
                )
            end_at = start_at + _QUARTER
            for _ in range(12):  # at most a skipped hour and a half (Lord Howe: 30 minutes)
                if _starts_hour(end_at, zone):
                    break
                end_at += _QUARTER
            buckets.append(
                Bucket(local_date(start_at, zone), max(start_at, since), min(end_at, until))
            )
            start_at = end_at
    except (OverflowError, ValueError):
        raise InvalidFilter("until", "is out of the supported date range") from None
    return buckets
