"""The parameters of the REST GETs, each declared once: how it is parsed, where its value goes
and how the OpenAPI document describes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from claude_api.events import MAX_NAME_LENGTH, Kind, Status
from claude_api.models.filters import (
    MAX_PAGE_SIZE,
    MAX_TOP,
    LeaderboardMetric,
    Period,
    UsageFilter,
    to_enum,
)
from claude_api.models.local_time import SHOWN, parse_date, parse_instant
from claude_api.models.queries.stats import DEFAULT_TOP_ERRORS
from claude_api.server.rest_query import Param

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")  # longer would only be out of range

# Parsers: the text of a parameter -> its value; ValueError or InvalidFilter for a bad one.


def _text(text: str, zone: ZoneInfo) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def _time_zone(text: str, zone: ZoneInfo) -> str:
    return UsageFilter(tz=_text(text, zone)).tz


def _integer(text: str, zone: ZoneInfo) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"must be an integer, got {text[:SHOWN]!r}")
    return int(text)


def _instant(text: str, zone: ZoneInfo) -> datetime:
    return parse_instant(text, zone)


def _date(text: str, zone: ZoneInfo) -> date:
    return parse_date(text)


def _choice(enum: type[StrEnum], **aliases: str) -> Callable[[str, ZoneInfo], Any]:
    def parse(text: str, zone: ZoneInfo) -> Any:
        return to_enum(enum, aliases.get(text, text), field="")

    return parse


def _choices(enum: type[StrEnum], *aliases: str) -> dict[str, Any]:
    return {"type": "string", "enum": [member.value for member in enum] + list(aliases)}


_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}
_INSTANT = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]
}
_LOCAL_TIME = (
    "ISO 8601 date or date-time; one without an offset is local time in `tz` (a date is its "
    "local midnight)."
)


def _int_schema(minimum: int, maximum: int, default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}


# Path parameters.
NAME = Param(
    name="name",
    location="path",
    description="The agent's or skill's name as recorded (it may contain '/').",
    schema=_TEXT,
    parse=_text,
    field="name",
)
TASK_ID = Param(
    name="task_id",
    location="path",
    description="The task's id as recorded.",
    schema=_TEXT,
    parse=_text,
    option="task_id",
)

# Filters: which invocations count.
PROJECT = Param(
    name="project",
    description="Only invocations of this project (their `project_id`).",
    schema=_TEXT,
    parse=_text,
    field="project_id",
)
MODEL = Param(
    name="model",
    description="Only invocations run on this model, e.g. `claude-sonnet-4-5`.",
    schema=_TEXT,
    parse=_text,
    field="model",
)
STATUS = Param(
    name="status",
    description="Only invocations in this status.",
    schema=_choices(Status),
    parse=_choice(Status),
    field="status",
)
SINCE = Param(
    name="since",
    description=f"Only invocations that started at or after this instant: {_LOCAL_TIME}",
    schema=_INSTANT,
    parse=_instant,
    field="since",
)
UNTIL = Param(
    name="until",
    description=f"Only invocations that started before this instant (exclusive): {_LOCAL_TIME}",
    schema=_INSTANT,
    parse=_instant,
    field="until",
)
TZ = Param(
    name="tz",
    description="IANA time zone in which days, weeks and months are counted and `since`/"
    "`until` without an offset are read.",
    schema={"type": "string", "default": "UTC", "examples": ["Europe/Paris"]},
    parse=_time_zone,
    field="tz",
)
KIND = Param(
    name="kind",
    description="Only agents or only skills (default: both).",
    schema=_choices(Kind),
    parse=_choice(Kind),
    field="kind",
)
AGENT = Param(
    name="agent",
    description="Only invocations of this agent: the tasks that used it.",
    schema=_TEXT,
    parse=_text,
    field="name",
    implies={"kind": Kind.AGENT},
)
SKILL = Param(
    name="skill",
    description="Only invocations of this skill: the tasks that used it.",
    schema=_TEXT,
    parse=_text,
    field="name",
    implies={"kind": Kind.SKILL},
)
FILTERS = (PROJECT, MODEL, STATUS, SINCE, UNTIL, TZ)

# Options: the query function's other arguments.
TOP_ERRORS = Param(
    name="top_errors",
    description="How many of the most frequent error messages to list per agent or skill.",
    schema=_int_schema(0, MAX_TOP, DEFAULT_TOP_ERRORS),
    parse=_integer,
    option="top_errors",
    default=DEFAULT_TOP_ERRORS,
)
TOP_FAILURES = Param(
    name="top_failures",
    description="How many of the most frequent (name, error message) failures to list.",
    schema=_int_schema(0, MAX_TOP, 10),
    parse=_integer,
    option="top_failures",
    default=10,
)
PERIOD = Param(
    name="period",
    description="Calendar day, ISO week (from Monday) or month in `tz`.",
    schema={**_choices(Period), "default": Period.DAY.value},
    parse=_choice(Period),
    option="period",
    default=Period.DAY,
)
DATE = Param(
    name="date",
    description="A local date (YYYY-MM-DD) in the period to report; default: today in `tz`.",
    schema={"type": "string", "format": "date"},
    parse=_date,
    option="on",
)
BY = Param(
    name="by",
    description="The metric ranked, highest first (`duration`: the slowest first); "
    "`success-rate` is accepted for `success_rate`.",
    schema={**_choices(LeaderboardMetric, "success-rate"), "default": "usage"},
    parse=_choice(LeaderboardMetric, **{"success-rate": "success_rate"}),
    option="metric",
    default=LeaderboardMetric.USAGE,
)
MIN_INVOCATIONS = Param(
    name="min_invocations",
    description="Only agents or skills with at least this many matching invocations.",
    schema=_int_schema(0, 2**62, 1),
    parse=_integer,
    option="min_invocations",
    default=1,
)
AFTER = Param(
    name="after",
    description="The `next_cursor` of the previous page.",
    schema={"type": "string"},
    parse=_text,
    option="after",
)


def limit(default: int, maximum: int = MAX_PAGE_SIZE) -> Param:
    """The `limit` parameter: how many items a page or a top-N holds."""
    return Param(
        name="limit",
        description="How many items to return at most.",
        schema=_int_schema(1, maximum, default),
        parse=_integer,
        option="limit",
        default=default,
    )
