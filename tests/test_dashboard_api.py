"""The GraphQL questions the dashboard asks beyond one name: statistics of everything matched
(`usage`) and histories without a name, on a real server, with a project-bound key too."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from claude_api.models.events import Kind, Status, UsageEvent
from tests import expected
from tests.auth_support import Secured, secured_server
from tests.factories import BASE_TIME, add_events, make_event

USAGE = """
query Usage($kind: Kind, $filter: UsageFilterInput) {
  usage(kind: $kind, filter: $filter) {
    kind name invocations completed failed running successRate totalCostUsd
    inputTokens outputTokens p95DurationSeconds
    topErrors { kind name errorMessage count }
  }
}
"""

HISTORY = """
query History($kind: Kind, $filter: UsageFilterInput) {
  history(kind: $kind, period: DAY, filter: $filter) {
    kind name startAt endAt
    buckets { periodStart invocations completed failed running totalCostUsd inputTokens }
  }
}
"""

SINCE = BASE_TIME.replace(hour=0)
UNTIL = SINCE + timedelta(days=4)


def seeded_events() -> list[UsageEvent]:
    """Agents and skills of two projects over four days, some failed, a few running."""
    rng = random.Random(15)
    events = []
    for number in range(80):
        status = rng.choice([Status.COMPLETED] * 6 + [Status.FAILED, Status.RUNNING])
        events.append(
            make_event(
                event_id=uuid.uuid4(),
                kind=rng.choice([Kind.AGENT, Kind.AGENT, Kind.SKILL]),
                name=rng.choice(["planner", "reviewer", "pdf", "tester"]),
                project_id=rng.choice(["web", "api"]),
                task_id=f"task-{number % 9}",
                timestamp=SINCE + timedelta(minutes=rng.randrange(4 * 24 * 60)),
                status=status,
                duration_seconds=rng.uniform(1, 90),
                cost_usd=round(rng.uniform(0, 2), 4),
                input_tokens=rng.randrange(10_000),
                output_tokens=rng.randrange(2_000),
                error_message=rng.choice(["timeout", "tool failed"])
                if status is Status.FAILED
                else None,
            )
        )
    # Outside the range: must not count.
    events.append(make_event(timestamp=UNTIL + timedelta(hours=1), project_id="web"))
    return events


@pytest.fixture
def seeded(engine: Engine) -> Iterator[tuple[Secured, list[UsageEvent]]]:
    events = seeded_events()
    add_events(engine, *events)
    with secured_server(engine) as server:
        yield server, [e for e in events if SINCE <= e.timestamp < UNTIL]


def window(project: str | None = None) -> dict[str, Any]:
    found = {"since": SINCE.isoformat(), "until": UNTIL.isoformat(), "tz": "UTC"}
    return found | ({"projectId": project} if project else {})


def check_totals(answer: dict[str, Any], events: list[UsageEvent]) -> None:
    want = expected.totals(events)
    for field in ("invocations", "completed", "failed", "running", "input_tokens"):
        assert answer[_camel(field)] == want[field], field
    assert answer["totalCostUsd"] == pytest.approx(want["total_cost_usd"], abs=1e-9)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_usage_answers_for_everything_matched_and_for_one_kind(seeded) -> None:
    server, events = seeded
    key = server.key("read")
    everything = server.data(USAGE, key, filter=window())["usage"]
    assert everything["kind"] is None and everything["name"] is None
    check_totals(everything, events)
    assert expected.close_percentile(
        everything["p95DurationSeconds"], expected.durations(events), 95
    )
    want_errors = expected.top_errors(events, 5)
    got_errors = [
        (e["kind"].lower(), e["name"], e["errorMessage"], e["count"])
        for e in everything["topErrors"]
    ]
    assert got_errors == want_errors

    skills = server.data(USAGE, key, kind="SKILL", filter=window())["usage"]
    assert skills["kind"] == "SKILL"
    check_totals(skills, [e for e in events if e.kind is Kind.SKILL])


def test_history_without_a_name_buckets_everything_or_one_kind(seeded) -> None:
    server, events = seeded
    key = server.key("read")
    for kind in (None, "AGENT"):
        history = server.data(HISTORY, key, kind=kind, filter=window())["history"]
        assert history["name"] is None
        assert len(history["buckets"]) == 4
        chosen = [e for e in events if kind is None or e.kind.value.upper() == kind]
        for day, bucket in enumerate(history["buckets"]):
            start = SINCE + timedelta(days=day)
            assert bucket["periodStart"] == start.date().isoformat()
            check_totals(bucket, [e for e in chosen if start <= e.timestamp < start + timedelta(1)])


def test_a_project_bound_key_sees_only_its_project(seeded) -> None:
    server, events = seeded
    key = server.key("read", project="web")
    web = [e for e in events if e.project_id == "web"]
    check_totals(server.data(USAGE, key, filter=window())["usage"], web)
    history = server.data(HISTORY, key, filter=window())["history"]
    assert sum(b["invocations"] for b in history["buckets"]) == len(web)
    refused = server.graphql(USAGE, key, filter=window("api")).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
