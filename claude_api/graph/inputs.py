"""Strawberry input types, each turned into the query layer's or the contract's own type."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry

from claude_api.graph.scalars import Long
from claude_api.graph.types import Kind, Status
from claude_api.models.filters import UsageFilter
from claude_api.models.local_time import in_zone, zone_of


@strawberry.input(description="Narrows the invocations a question looks at; empty matches all.")
class UsageFilterInput:
    project_id: str | None = None
    model: str | None = None
    status: Status | None = None
    since: datetime | None = strawberry.field(
        default=None,
        description="Invocations started at or after this instant; without an offset, a local "
        "time in tz.",
    )
    until: datetime | None = strawberry.field(
        default=None,
        description="Invocations started before this instant; without an offset, a local time "
        "in tz.",
    )
    tz: str = strawberry.field(
        default="UTC",
        description="IANA time zone in which days, weeks and months are counted and since/until "
        "without an offset are read.",
    )

    def to_filter(self, **fixed: Any) -> UsageFilter:
        """The query layer's filter, with `fixed` fields (kind, name) set by the field asked."""
        fields = {**dataclasses.asdict(self), **fixed}
        zone = zone_of(self.tz)
        for bound in ("since", "until"):
            if fields[bound] is not None:
                fields[bound] = in_zone(fields[bound], zone)
        return UsageFilter(**fields)


def to_filter(filter: UsageFilterInput | None, **fixed: Any) -> UsageFilter:
    """`filter` as the query layer's filter; an absent filter matches everything."""
    return (filter or UsageFilterInput()).to_filter(**fixed)


@strawberry.input(
    description="One usage event: the start (status RUNNING) or the finish of an invocation."
)
class UsageEventInput:
    event_id: UUID = strawberry.field(description="Made by the emitter; the idempotency key.")
    kind: Kind
    name: str
    task_id: str
    status: Status
    timestamp: datetime = strawberry.field(description="When it started, with an offset.")
    parent_id: UUID | None = None
    project_id: str | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    cost_usd: float | None = None
    input_tokens: Long | None = None
    output_tokens: Long | None = None
    cache_read_tokens: Long | None = None
    cache_creation_tokens: Long | None = None
    model: str | None = None
    error_message: str | None = None
    source: str = "graphql"

    def to_wire(self) -> dict[str, Any]:
        """The event's wire form, validated by `parse_events`; unset fields are left out."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
