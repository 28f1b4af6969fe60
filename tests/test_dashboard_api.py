"""The GraphQL questions the dashboard asks beyond one name, on a real server: statistics of
everything matched (`usage`), histories without a name and by the hour, the duration histogram,
one agent's models, with a project-bound key too."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import Engine

from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.queries.durations import EDGES
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


FIELDS = '{ __type(name: "HistoryBucket") { fields { name } } }'


def test_a_history_series_is_its_buckets_as_columns(seeded) -> None:
    """What the dashboard's charts read (`series`, one list per field) holds every field of
    every bucket, empty and unknown ones included, as `buckets` does."""
    server, events = seeded
    key = server.key("read")
    fields = [f["name"] for f in server.data(FIELDS, key)["__type"]["fields"]]
    selected = " ".join(fields)
    query = (
        "query Lines($filter: UsageFilterInput) {"
        '  histories(kind: AGENT, names: ["planner", "nobody"], filter: $filter) {'
        f"    name buckets {{ {selected} }} series {{ {selected} }} }} }}"
    )
    # Two days past the seeded ones: one with a single unpriced run, one empty.
    unpriced = make_event(name="planner", timestamp=UNTIL + timedelta(hours=2), cost_usd=None)
    add_events(server.engine, unpriced)
    longer = {**window(), "until": (UNTIL + timedelta(days=2)).isoformat()}
    planner, nobody = server.data(query, key, filter=longer)["histories"]
    assert [planner["name"], nobody["name"]] == ["planner", "nobody"]
    for history in (planner, nobody):
        assert set(history["series"]) == set(fields)
        for field in fields:
            assert history["series"][field] == [b[field] for b in history["buckets"]], field
    runs = [e for e in events if e.name == "planner" and e.kind is Kind.AGENT]
    assert planner["series"]["invocations"] == [
        *(sum(SINCE + timedelta(days=d) <= e.timestamp < SINCE + timedelta(days=d + 1)
              for e in runs) for d in range(4)),
        1,
        0,
    ]  # fmt: skip
    assert planner["series"]["totalCostUsd"][4:] == [None, 0.0]
    assert nobody["series"]["invocations"] == [0] * 6


def test_a_project_bound_key_sees_only_its_project(seeded) -> None:
    server, events = seeded
    key = server.key("read", project="web")
    web = [e for e in events if e.project_id == "web"]
    check_totals(server.data(USAGE, key, filter=window())["usage"], web)
    history = server.data(HISTORY, key, filter=window())["history"]
    assert sum(b["invocations"] for b in history["buckets"]) == len(web)
    refused = server.graphql(USAGE, key, filter=window("api")).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


DURATIONS = """
query Durations($kind: Kind, $name: String, $filter: UsageFilterInput) {
  durationHistogram(kind: $kind, name: $name, filter: $filter) {
    buckets { minSeconds maxSeconds count }
    measured exact
  }
}
"""


def expected_bins(durations: list[float]) -> tuple[dict[float, int], int]:
    """Counts per lower edge of the 1-2-5 series, and how many durations lie within 1% of an
    edge (the sketch's accuracy: those may be counted in the bucket beside)."""
    counts: dict[float, int] = {}
    near = 0
    for duration in durations:
        lower = max([0.0, *(edge for edge in EDGES if edge <= duration)])
        counts[lower] = counts.get(lower, 0) + 1
        near += any(abs(duration - edge) <= 0.0101 * edge for edge in EDGES)
    return counts, near


def test_the_duration_histogram_counts_finished_runs_per_bucket(seeded) -> None:
    server, events = seeded
    key = server.key("read")
    for kind, name in ((None, None), ("AGENT", "planner")):
        chosen = [e for e in events if name is None or (e.name == name and e.kind is Kind.AGENT)]
        answer = server.data(DURATIONS, key, kind=kind, name=name, filter=window())
        histogram = answer["durationHistogram"]
        durations = expected.durations(chosen)
        assert histogram["measured"] == len(durations)
        assert histogram["exact"] is False  # whole days: the rollups' sketch bins
        buckets = histogram["buckets"]
        for before, after in pairwise(buckets):
            assert before["maxSeconds"] == after["minSeconds"]
        want, near = expected_bins(durations)
        got = {b["minSeconds"]: b["count"] for b in buckets}
        assert sum(got.values()) == len(durations)
        assert sum(abs(got.get(edge, 0) - count) for edge, count in want.items()) <= 2 * near

    # Under an hour: the raw rows alone, each duration placed exactly.
    start = min(e.timestamp for e in events)
    hour = {"since": start.isoformat(), "until": (start + timedelta(minutes=50)).isoformat()}
    inside = [e for e in events if start <= e.timestamp < start + timedelta(minutes=50)]
    exact = server.data(DURATIONS, key, filter=hour)["durationHistogram"]
    assert exact["exact"] is True
    want, _ = expected_bins(expected.durations(inside))
    assert {b["minSeconds"]: b["count"] for b in exact["buckets"] if b["count"]} == want


def test_nothing_finished_has_no_buckets(seeded) -> None:
    server, _ = seeded
    key = server.key("read")
    running = server.data(DURATIONS, key, filter=window() | {"status": "RUNNING"})
    assert running["durationHistogram"] == {"buckets": [], "measured": 0, "exact": True}
    unknown = server.data(DURATIONS, key, kind="AGENT", name="nobody", filter=window())
    assert unknown["durationHistogram"]["measured"] == 0


MODELS = """
query Models($kind: Kind, $name: String, $filter: UsageFilterInput) {
  models(kind: $kind, name: $name, filter: $filter) {
    models { model invocations totalCostUsd unpricedInvocations }
    totals { invocations }
  }
}
"""


def test_models_of_one_agent(engine: Engine, seeded) -> None:
    server, events = seeded
    extra = [
        make_event(name="planner", model="claude-opus-4-6", timestamp=SINCE + timedelta(hours=2)),
        make_event(name="planner", model=None, cost_usd=None, timestamp=SINCE + timedelta(hours=3)),
        make_event(name="reviewer", model="glm-4.6", timestamp=SINCE + timedelta(hours=4)),
    ]
    add_events(engine, *extra)
    planner = [e for e in [*events, *extra] if e.name == "planner" and e.kind is Kind.AGENT]
    answer = server.data(MODELS, server.key("read"), kind="AGENT", name="planner", filter=window())
    rows = {row["model"]: row for row in answer["models"]["models"]}
    counts = {}
    for e in planner:
        counts[e.model] = counts.get(e.model, 0) + 1
    assert {model: row["invocations"] for model, row in rows.items()} == counts
    assert rows[None]["totalCostUsd"] is None and rows[None]["unpricedInvocations"] == 1
    assert answer["models"]["totals"]["invocations"] == len(planner)


HOURLY = """
query Hourly($kind: Kind, $name: String, $filter: UsageFilterInput) {
  history(kind: $kind, name: $name, period: HOUR, filter: $filter) {
    period buckets { startAt invocations }
  }
}
"""


def test_a_history_by_the_hour(seeded) -> None:
    server, events = seeded
    day = {"since": SINCE.isoformat(), "until": (SINCE + timedelta(days=1)).isoformat(),
           "tz": "America/New_York"}  # fmt: skip
    history = server.data(HOURLY, server.key("read"), filter=day)["history"]
    assert history["period"] == "HOUR" and len(history["buckets"]) == 24
    for bucket in history["buckets"]:
        start = datetime.fromisoformat(bucket["startAt"])
        inside = [e for e in events if start <= e.timestamp < start + timedelta(hours=1)]
        assert bucket["invocations"] == len(inside)


def test_a_budget_per_hour_is_bad_input(seeded) -> None:
    server, _ = seeded
    mutation = "mutation { setBudget(budget: {period: HOUR, usd: 1}) { id } }"
    answer = server.graphql(mutation, server.key("admin")).json()
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    report = server.graphql("{ report(period: HOUR) { tz } }", server.key("read")).json()
    assert report["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
