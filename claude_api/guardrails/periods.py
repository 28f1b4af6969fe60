"""A budget's period in its time zone, and a UTC range as the rollup buckets that cover it.

Standard library only, for the PreToolUse hook. The query layer computes the same calendar
edges (`models.queries._calendar`), which tests hold to these; both split ranges into buckets
with `claude_api.buckets`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from claude_api import buckets
from claude_api.buckets import Interval

PERIODS = ("day", "week", "month")
SPOKEN = {"day": "today", "week": "this week", "month": "this month"}

# A half-open range [start, end) of UTC instants.
Range = tuple[datetime, datetime]


def period_bounds(now: datetime, period: str, zone: ZoneInfo) -> Range:
    """The day, ISO week (from Monday) or month holding the aware `now` in `zone`, as UTC.

    A day lasts 23 or 25 hours when the zone changes its clocks; a midnight that a zone skips
    begins at the transition itself.
    """
    day = now.astimezone(zone).date()
    if period == "week":
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
    elif period == "month":
        first = day.replace(day=1)
        year, month = divmod(first.year * 12 + first.month, 12)
        following = date(year, month + 1, 1)
    elif period == "day":
        first, following = day, day + timedelta(days=1)
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    return _midnight(first, zone), _midnight(following, zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0: a skipped midnight maps to the transition, a repeated one to its first occurrence.
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def split(start: datetime, end: datetime) -> tuple[dict[str, list[Interval]], list[Interval]]:
    """[start, end) as the fewest whole UTC months, days and hours (bucket starts per grain,
    coarsest first) and the raw ranges left at its edges (less than an hour on each side)."""
    return buckets.split([(start, end)])
