"""The options analytics commands share, and how they become GraphQL variables."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from claude_api.models.local_time import parse_instant


class PeriodChoice(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class MetricChoice(StrEnum):
    USAGE = "usage"
    COST = "cost"
    SUCCESS_RATE = "success-rate"
    DURATION = "duration"
    P50 = "p50"
    P95 = "p95"
    TOKENS = "tokens"


def enum_name(choice: StrEnum) -> str:
    """The GraphQL enum value of a CLI choice: success-rate -> SUCCESS_RATE."""
    return choice.value.upper().replace("-", "_")


def _check_tz(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown IANA time zone {value!r}, e.g. Europe/Paris") from None
    return value


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The claude-api server to ask, e.g. http://127.0.0.1:8000 (default: CLAUDE_API_URL); "
        "without one, the local database answers (CLAUDE_API_DATABASE_URL).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON with the fields of the GraphQL result.")
]
ProjectOption = Annotated[
    str | None, typer.Option("--project", help="Only this project's invocations.")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DATE",
        help="Only invocations started at or after this: a date (YYYY-MM-DD, YYYYMMDD, today, "
        "yesterday, midnight in --tz), a span back from now (24h, 7d, 2w) or an ISO 8601 time.",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Only invocations started before this; the same forms as --since.",
    ),
]
TzOption = Annotated[
    str,
    typer.Option(
        "--tz",
        callback=_check_tz,
        help="IANA time zone of days, weeks, months and dates, e.g. Europe/Paris.",
    ),
]
PeriodOption = Annotated[
    PeriodChoice, typer.Option("--period", help="Calendar bucket: weeks start on Monday.")
]


DateOption = Annotated[
    str | None,
    typer.Option(
        "--date",
        metavar="DATE",
        help="A date in the period to report: YYYY-MM-DD, YYYYMMDD, today or yesterday "
        "(default: today in --tz).",
        show_default=False,
    ),
]

WHEN_FORMS = (
    "a date (YYYY-MM-DD, YYYYMMDD, today, yesterday), a span back from now (24h, 7d, 2w) or "
    "an ISO 8601 time"
)
DAY_FORMS = "a date: YYYY-MM-DD, YYYYMMDD, today or yesterday"
SPAN_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_SPAN = re.compile(r"(\d{1,6})([hdw])")
_COMPACT_DAY = re.compile(r"\d{8}")


def usage_filter(
    *,
    project: str | None = None,
    since: str | None = None,
    until: str | None = None,
    tz: str = "UTC",
) -> dict[str, Any]:
    """The `UsageFilterInput` variable of these options; dates are midnights in `tz`.

    Raises typer.BadParameter (exit 2) for a value no form reads or a --since after --until.
    """
    zone = ZoneInfo(tz)
    start = _instant(since, zone, "--since")
    end = _instant(until, zone, "--until")
    if start is not None and end is not None and start > end:
        raise typer.BadParameter(
            f"--since is after --until ({start.isoformat()} > {end.isoformat()})",
            param_hint="'--since'",
        )
    variables: dict[str, Any] = {
        "projectId": project,
        "since": start.isoformat() if start else None,
        "until": end.isoformat() if end else None,
        "tz": tz,
    }
    return {key: value for key, value in variables.items() if value is not None}


def parse_day(value: str, zone: ZoneInfo, *, now: datetime | None = None) -> date | None:
    """The day `value` names: YYYY-MM-DD, YYYYMMDD, today or yesterday (in `zone`); None when
    it names none."""
    word = value.strip().lower()
    if word in ("today", "yesterday"):
        today = (now or datetime.now(UTC)).astimezone(zone).date()
        return today if word == "today" else today - timedelta(days=1)
    try:
        if _COMPACT_DAY.fullmatch(word):
            return date(int(word[:4]), int(word[4:6]), int(word[6:]))
        if len(word) == len("YYYY-MM-DD"):
            return date.fromisoformat(word)
    except ValueError:
        return None
    return None


def parse_when(value: str, zone: ZoneInfo, *, now: datetime | None = None) -> datetime | None:
    """The instant `value` names, aware: a day's midnight in `zone`, a span back from `now`
    (24h, 7d, 2w), or an ISO 8601 time (without an offset, in `zone`); None when it names
    none."""
    day = parse_day(value, zone, now=now)
    if day is not None:
        return datetime.combine(day, time(), tzinfo=zone)
    span = _SPAN.fullmatch(value.strip().lower())
    if span:
        amount, unit = span.groups()
        return (now or datetime.now(UTC)) - timedelta(**{SPAN_UNITS[unit]: int(amount)})
    try:
        return parse_instant(value.strip(), zone).astimezone(zone)
    except (ValueError, OverflowError):
        return None


def _instant(value: str | None, zone: ZoneInfo, option: str) -> datetime | None:
    if value is None:
        return None
    moment = parse_when(value, zone)
    if moment is None:
        raise typer.BadParameter(f"{value!r} is not {WHEN_FORMS}", param_hint=f"'{option}'")
    return moment


def report_day(value: str | None, tz: str) -> str | None:
    """The --date of a report as YYYY-MM-DD, read in `tz`. Raises typer.BadParameter."""
    if value is None:
        return None
    day = parse_day(value, ZoneInfo(tz))
    if day is None:
        raise typer.BadParameter(f"{value!r} is not {DAY_FORMS}", param_hint="'--date'")
    return day.isoformat()
