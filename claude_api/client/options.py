"""The options analytics commands share, and how they become GraphQL variables."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer


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
        help="Only invocations started at or after this: YYYY-MM-DD or an ISO 8601 time "
        "(without an offset, in --tz).",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Only invocations started before this: YYYY-MM-DD or an ISO 8601 time.",
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


def usage_filter(
    *,
    project: str | None = None,
    since: str | None = None,
    until: str | None = None,
    tz: str = "UTC",
) -> dict[str, Any]:
    """The `UsageFilterInput` variable of these options; dates are midnights in `tz`."""
    zone = ZoneInfo(tz)
    variables: dict[str, Any] = {
        "projectId": project,
        "since": _instant(since, zone, "--since"),
        "until": _instant(until, zone, "--until"),
        "tz": tz,
    }
    return {key: value for key, value in variables.items() if value is not None}


def _instant(value: str | None, zone: ZoneInfo, option: str) -> str | None:
    if value is None:
        return None
    try:
        if len(value) == len("YYYY-MM-DD"):
            moment = datetime.combine(date.fromisoformat(value), time(), tzinfo=zone)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param_hint=f"'{option}'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()
