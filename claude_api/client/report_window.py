"""The words of `claude-api analytics report` for what it covers and what it compares with:
"Month 2026-12 so far (1-7 Dec, to 10:00 UTC), compared with 1-7 Nov, to 10:00"."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

PERIOD_TITLES = {"day": "Day", "week": "Week of", "month": "Month"}


def report_title(report: dict[str, Any], period: str) -> str:
    """The report's title: its period (so far, or whole) and the stretch it is compared with."""
    zone = ZoneInfo(report["tz"])
    start = report["periodStart"]
    label = start[:7] if period == "month" else start
    current = _stretch(report["startAt"], report["untilAt"], zone)
    previous = _stretch(report["previousStartAt"], report["previousEndAt"], zone)
    if report["soFar"]:
        return (
            f"{PERIOD_TITLES[period]} {label} so far ({current} {report['tz']}), compared with "
            f"{previous}"
        )
    return f"{PERIOD_TITLES[period]} {label} ({report['tz']}), compared with {previous}"


def fallback_note(report: dict[str, Any], period: str) -> str | None:
    """What to say when the current period had nothing and an earlier one is shown instead."""
    empty = report.get("emptyPeriodStart")
    if empty is None:
        return None
    shown = report["periodStart"]
    if period == "month":
        empty, shown = empty[:7], shown[:7]
    return (
        f"nothing recorded yet in the {period} of {empty} ({report['tz']}): showing {shown}, "
        f"the latest {period} with invocations (--date chooses another)"
    )


def _stretch(start_at: str, end_at: str, zone: ZoneInfo) -> str:
    """[start_at, end_at) as local days: "1-7 Nov", "30 Nov-6 Dec", "7 Dec", with "to 10:00"
    when it ends within a day."""
    start = datetime.fromisoformat(start_at).astimezone(zone)
    end = datetime.fromisoformat(end_at).astimezone(zone)
    ends_at_midnight = end.time() == time()
    last = end.date() - timedelta(days=1) if ends_at_midnight else end.date()
    days = _days(start.date(), max(last, start.date()))
    return days if ends_at_midnight else f"{days}, to {end:%H:%M}"


def _days(first: date, last: date) -> str:
    # The title's period label carries the year; a stretch names it only across a new year.
    if first == last:
        return f"{first.day} {first:%b}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}-{last.day} {last:%b}"
    if first.year == last.year:
        return f"{first.day} {first:%b}-{last.day} {last:%b}"
    return f"{first.day} {first:%b %Y}-{last.day} {last:%b %Y}"
