"""The usage event: the one data model every runner emits and every plugin receives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from claude_api.errors import InvalidEvents

MAX_NAME_LENGTH = 200
MAX_ERROR_LENGTH = 20_000
MAX_FUTURE_SKEW = timedelta(days=1)


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


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
OptionalName = Annotated[str | None, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Amount = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]
Tokens = Annotated[int | None, Field(ge=0, le=2**62)]


def truncate_error(message: str) -> str:
    """Shorten an error text to what an event may carry, keeping its start and its end."""
    if len(message) <= MAX_ERROR_LENGTH:
        return message
    half = MAX_ERROR_LENGTH // 2 - 10
    return f"{message[:half]} … [truncated] … {message[-half:]}"


class UsageEvent(BaseModel):
    """One invocation of an agent or a skill, as a start (`running`) or a finish.

    The start and the finish of one invocation share `event_id`; the store keeps one row per id.
    Timestamps must carry an offset and are normalised to UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    event_id: UUID
    kind: Kind
    name: Name
    task_id: Name
    parent_id: UUID | None = None
    project_id: OptionalName = None
    timestamp: AwareDatetime
    finished_at: AwareDatetime | None = None
    status: Status
    duration_seconds: Amount = None
    cost_usd: Amount = None
    cost_source: CostSource | None = None
    input_tokens: Tokens = None
    output_tokens: Tokens = None
    cache_read_tokens: Tokens = None
    cache_creation_tokens: Tokens = None
    model: OptionalName = None
    error_message: Annotated[str | None, Field(max_length=MAX_ERROR_LENGTH)] = None
    source: Annotated[str, Field(min_length=1, max_length=64)] = "api"

    @field_validator("timestamp", "finished_at")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        if value > datetime.now(UTC) + MAX_FUTURE_SKEW:
            raise ValueError("is more than a day in the future")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.finished_at is not None and self.finished_at < self.timestamp:
            raise ValueError("finished_at is before timestamp")
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
