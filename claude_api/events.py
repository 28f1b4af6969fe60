"""The usage event: the one data model every runner emits and every plugin receives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from claude_api.errors import InvalidEvents
from claude_api.names import MAX_NAME_LENGTH

MAX_ERROR_LENGTH = 20_000
MAX_FUTURE_SKEW = timedelta(days=1)
# Bounds no real invocation comes near; they keep the sums of the aggregates finite (a float
# sum past 1e308 is an error on PostgreSQL, an integer sum past 2**63 one on SQLite).
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_COST_USD = 1_000_000.0
MAX_DURATION_SECONDS = 1e9  # about 31 years
MAX_TOKENS = 10**12


class Kind(StrEnum):
    AGENT = "agent"
    SKILL = "skill"


class Status(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class CostSource(StrEnum):
    """Where a row's cost came from."""

    REPORTED = "reported"  # the runner reported it
    COMPUTED = "computed"  # computed from model and tokens with the pricing tables
    UNPRICED = "unpriced"  # tokens are known but the model has no price: cost stays empty


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL cannot store NUL in text, and no name needs one.
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _number(value: Any) -> Any:
    # Lax validation would take true as 1 and "12" as 12: a runner sending either has a bug.
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a number")
    return value


def _instant(value: Any) -> Any:
    # Lax validation would take a number as Unix time, in seconds or milliseconds by its size.
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time with an offset")
    return value


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_no_nul)]
OptionalName = Annotated[
    str | None, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_no_nul)
]
# The constraints first: after a validator pydantic would apply them to None as well.
Duration = Annotated[
    float | None,
    Field(ge=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False),
    BeforeValidator(_number),
]
Cost = Annotated[
    float | None, Field(ge=0, le=MAX_COST_USD, allow_inf_nan=False), BeforeValidator(_number)
]
Tokens = Annotated[int | None, Field(ge=0, le=MAX_TOKENS), BeforeValidator(_number)]
Instant = Annotated[AwareDatetime, BeforeValidator(_instant)]


def truncate_error(message: str) -> str:
    """Shorten an error text to what an event may carry, keeping its start and its end."""
    if len(message) <= MAX_ERROR_LENGTH:
        return message
    half = MAX_ERROR_LENGTH // 2 - 10
    return f"{message[:half]} … [truncated] … {message[-half:]}"


class UsageEvent(BaseModel):
    """One invocation of an agent or a skill, as a start (`running`) or a finish.

    The start and the finish of one invocation share `event_id`; the store keeps one row per id.
    Timestamps must carry an offset and are normalised to UTC. Text fields hold no NUL
    characters; in `error_message`, free text from tools, each is replaced by U+FFFD.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    event_id: UUID
    kind: Kind
    name: Name
    task_id: Name
    parent_id: UUID | None = None
    project_id: OptionalName = None
    timestamp: Instant
    finished_at: Instant | None = None
    status: Status
    duration_seconds: Duration = None
    cost_usd: Cost = None
    cost_source: CostSource | None = None
    input_tokens: Tokens = None
    output_tokens: Tokens = None
    cache_read_tokens: Tokens = None
    cache_creation_tokens: Tokens = None
    model: OptionalName = None
    error_message: Annotated[str | None, Field(max_length=MAX_ERROR_LENGTH)] = None
    source: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul)] = "api"

    @field_validator("timestamp", "finished_at")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of the range of representable times") from None
        if value < MIN_TIMESTAMP:
            raise ValueError(f"is before {MIN_TIMESTAMP.date().isoformat()}")
        if value > datetime.now(UTC) + MAX_FUTURE_SKEW:
            raise ValueError("is more than a day in the future")
        return value

    @field_validator("error_message")
    @classmethod
    def _replace_nul(cls, value: str | None) -> str | None:
        return value.replace("\x00", "\N{REPLACEMENT CHARACTER}") if value else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.finished_at is not None and self.finished_at < self.timestamp:
            raise ValueError("finished_at is before timestamp")
        if self.parent_id is not None and self.parent_id == self.event_id:
            raise ValueError("parent_id is the event's own event_id")
        if self.status is Status.RUNNING and self.finished_at is not None:
            raise ValueError("a running invocation has no finished_at")
        if self.cost_source is CostSource.UNPRICED and self.cost_usd is not None:
            raise ValueError("an unpriced invocation has no cost_usd")
        if self.cost_usd is not None and self.cost_source is None:
            object.__setattr__(self, "cost_source", CostSource.REPORTED)
        if self.status is not Status.RUNNING:
            self._derive_finish()
        return self

    def _derive_finish(self) -> None:
        if self.finished_at is None and self.duration_seconds is not None:
            end = self.timestamp + timedelta(seconds=self.duration_seconds)
            if end > datetime.now(UTC) + MAX_FUTURE_SKEW:
                raise ValueError("timestamp + duration_seconds is more than a day in the future")
            object.__setattr__(self, "finished_at", end)
        elif self.duration_seconds is None and self.finished_at is not None:
            seconds = (self.finished_at - self.timestamp).total_seconds()
            object.__setattr__(self, "duration_seconds", seconds)

    @property
    def is_finish(self) -> bool:
        return self.status is not Status.RUNNING

    def finish(self, status: Status, **changes: Any) -> UsageEvent:
        """The finish of this started invocation, with the given fields changed (validated)."""
        data = self.model_dump()
        data.update(changes, status=status)
        return UsageEvent.model_validate(data)


def validation_problems(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Each problem of a pydantic error as {"field", "message"}, the field's path after `prefix`."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in detail["loc"])
        field = ".".join(part for part in (prefix, path) if part) or "body"
        problems.append({"field": field, "message": detail["msg"]})
    return problems


def parse_events(items: list[Any], location: str = "events") -> list[UsageEvent]:
    """Every item (wire form) as an event; raises InvalidEvents listing every problem, each
    with the path of its field (`events[3].cost_usd`), when any item is invalid."""
    events: list[UsageEvent] = []
    problems: list[dict[str, str]] = []
    for index, item in enumerate(items):
        try:
            events.append(UsageEvent.model_validate(item))
        except ValidationError as error:
            prefix = f"{location}[{index}]" if location else ""
            problems += validation_problems(error, prefix)
    if problems:
        raise InvalidEvents(problems)
    return events
