"""The usage event contract: what it accepts, what it rejects, what it derives."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from claude_api.events import (
    MAX_ERROR_LENGTH,
    CostSource,
    Status,
    UsageEvent,
    truncate_error,
)
from tests.factories import BASE_TIME, make_event


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "tool"}, "kind"),
        ({"status": "done"}, "status"),
        ({"timestamp": datetime(2026, 5, 1, 10, 0)}, "timestamp"),
        ({"timestamp": datetime.now(UTC) + timedelta(days=30)}, "timestamp"),
        ({"cost_usd": -0.01}, "cost_usd"),
        ({"cost_usd": math.nan}, "cost_usd"),
        ({"duration_seconds": math.inf}, "duration_seconds"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"error_message": "e" * (MAX_ERROR_LENGTH + 1)}, "error_message"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_fields_are_rejected_by_name(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        make_event(**overrides)
    assert field in {str(part) for error in raised.value.errors() for part in error["loc"]}


def test_inconsistent_events_are_rejected() -> None:
    with pytest.raises(ValidationError, match="finished_at is before timestamp"):
        make_event(finished_at=BASE_TIME - timedelta(seconds=1), duration_seconds=None)
    with pytest.raises(ValidationError, match="running invocation has no finished_at"):
        make_event(status=Status.RUNNING, finished_at=BASE_TIME)
    with pytest.raises(ValidationError, match="unpriced"):
        make_event(cost_source=CostSource.UNPRICED, cost_usd=1.0)


def test_timestamps_are_normalised_to_utc() -> None:
    event = make_event(timestamp="2026-05-01T12:00:00+02:00")
    assert event.timestamp == BASE_TIME
    assert event.timestamp.tzinfo is UTC


def test_finish_time_and_duration_derive_each_other() -> None:
    assert make_event(duration_seconds=90).finished_at == BASE_TIME + timedelta(seconds=90)
    derived = make_event(duration_seconds=None, finished_at=BASE_TIME + timedelta(minutes=2))
    assert derived.duration_seconds == 120


def test_reported_cost_is_marked_reported() -> None:
    assert make_event(cost_usd=0.3).cost_source is CostSource.REPORTED
    assert make_event(cost_usd=None).cost_source is None


def test_wire_form_round_trips() -> None:
    event = make_event(parent_id="6f1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d", project_id="p")
    assert UsageEvent.model_validate_json(event.model_dump_json()) == event


def test_truncate_error_keeps_both_ends() -> None:
    text = "start " + "x" * (MAX_ERROR_LENGTH * 2) + " end"
    short = truncate_error(text)
    assert len(short) <= MAX_ERROR_LENGTH
    assert short.startswith("start ") and short.endswith(" end")
    assert truncate_error("short") == "short"
