"""The typed inputs of the query layer: `UsageFilter`, periods, leaderboard metrics and limits.

Every check raises `InvalidFilter(field, message)`, so the API and the CLI can name the bad input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from claude_api.errors import InvalidFilter
from claude_api.events import MAX_NAME_LENGTH, Kind, Status

MAX_PAGE_SIZE = 1000
MAX_TOP = 100
MAX_BUCKETS = 1000

E = TypeVar("E", bound=StrEnum)


class Period(StrEnum):
    """A calendar period in the filter's time zone; weeks are ISO weeks, starting on Monday.
    An hour runs from one local hh:00 to the next (histories only: a report covers a day, a
    week or a month)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    HOUR = "hour"


class LeaderboardMetric(StrEnum):
    """What a leaderboard ranks by, highest first."""

    USAGE = "usage"  # invocations
    COST = "cost"  # total cost in USD
    SUCCESS_RATE = "success_rate"  # completed / finished
    DURATION = "duration"  # average duration of finished runs: the slowest first
    P50 = "p50"  # median duration of finished runs: the slowest first
    P95 = "p95"  # 95th percentile duration of finished runs: the slowest first
    TOKENS = "tokens"  # total tokens: input + output + cache creation + cache read


@dataclass(frozen=True, kw_only=True)
class UsageFilter:
    """Which invocations a query looks at; every field left empty matches everything.

    `kind` None means agents and skills together. `since`/`until` bound the start timestamp of
    an invocation, half-open: since <= timestamp < until; they must be aware and are kept in UTC.
    `tz` is the IANA time zone in which days, weeks and months are counted.
    Strings are accepted for `kind` and `status` and converted to their enums.
    """

    kind: Kind | None = None
    name: str | None = None
    task_id: str | None = None
    project_id: str | None = None
    status: Status | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.kind is not None:
            object.__setattr__(self, "kind", to_enum(Kind, self.kind, field="kind"))
        if self.status is not None:
            object.__setattr__(self, "status", to_enum(Status, self.status, field="status"))
        for field in ("name", "task_id", "project_id", "model"):
            check_text(field, getattr(self, field))
        for field in ("since", "until"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, _to_utc(field, value))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidFilter("since", "must be before until")
        _check_tz(self.tz)

    @property
    def zone(self) -> ZoneInfo:
        """The time zone `tz` names (zoneinfo caches it)."""
        return ZoneInfo(self.tz)

    def replace(self, **changes: Any) -> UsageFilter:
        """A copy with `changes` applied and validated."""
        return dataclasses.replace(self, **changes)


def to_enum(enum: type[E], value: object, *, field: str) -> E:
    """`value` as a member of `enum` (a member or its string value)."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidFilter(field, f"must be one of {choices}, got {value!r}") from None


def check_limit(value: int, *, field: str = "limit", maximum: int = MAX_PAGE_SIZE) -> int:
    """A page size or top-N: an integer from 1 to `maximum`."""
    if not _is_int(value) or not 1 <= value <= maximum:
        raise InvalidFilter(field, f"must be an integer from 1 to {maximum}, got {value!r}")
    return value


def check_count(value: int, *, field: str, maximum: int = 2**62) -> int:
    """A threshold or optional top-N: an integer from 0 to `maximum`."""
    if not _is_int(value) or not 0 <= value <= maximum:
        raise InvalidFilter(field, f"must be an integer from 0 to {maximum}, got {value!r}")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_text(field: str, value: object) -> None:
    """Raise InvalidFilter unless `value` is None or a name a usage row can hold."""
    if value is None:
        return
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidFilter(field, f"must be a text of 1 to {MAX_NAME_LENGTH} characters")
    if "\x00" in value:
        raise InvalidFilter(field, "must not contain NUL characters")


def _to_utc(field: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidFilter(field, f"must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidFilter(field, "must carry a time zone offset")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidFilter(field, "is out of the range of representable times") from None


def _check_tz(tz: object) -> None:
    try:
        ZoneInfo(tz)  # type: ignore[arg-type]
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidFilter("tz", f"unknown IANA time zone {tz!r}") from None
