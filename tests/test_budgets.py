"""Budgets on both databases: a budget's period is the calendar day, week or month of its time
zone; what it has spent is what its invocations of that period cost (running ones included),
the same as the usage statistics say; a call is denied, warned or allowed by the budgets that
cover it; and budgets are set, changed, listed and removed with bad input refused."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.buckets import floor
from claude_api.errors import InvalidFilter, NotFound
from claude_api.events import Status, UsageEvent
from claude_api.guardrails.periods import PERIODS, period_bounds, split
from claude_api.guardrails.spend import Scope, read_spend
from claude_api.guardrails.verdicts import Budget, BudgetState, decide
from claude_api.models.budgets import remove_budget, set_budget
from claude_api.models.db import write_engine
from claude_api.models.filters import Period, UsageFilter
from claude_api.models.queries import usage_stats
from claude_api.models.queries._calendar import period_range
from claude_api.models.queries.budgets import (
    SessionReader,
    budget_statuses,
    check_budgets,
    list_budgets,
)
from tests.factories import add_events, make_event

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "Australia/Lord_Howe",
    "America/Santiago",
]
START = datetime(2025, 1, 1, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=3 * 365 * 86_400 * 4).map(
    lambda quarter_seconds: START + timedelta(seconds=quarter_seconds / 4)
)


# ---- periods held to the query layer's, and the bucket split ----------------------------------


@settings(max_examples=400, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES), period=st.sampled_from(PERIODS))
def test_a_period_is_the_calendar_period_of_the_zone(now: datetime, zone: str, period: str) -> None:
    start, end = period_bounds(now, period, ZoneInfo(zone))
    local = now.astimezone(ZoneInfo(zone)).date()
    _, expected_start, expected_end = period_range(local, Period(period), ZoneInfo(zone))
    assert (start, end) == (expected_start, expected_end)
    assert start <= now < end


@settings(max_examples=400, deadline=None)
@given(since=instants, until=instants, probes=st.lists(instants, min_size=1, max_size=20))
def test_the_split_covers_each_instant_of_the_range_once(
    since: datetime, until: datetime, probes: list[datetime]
) -> None:
    """Whole buckets and raw edges of under an hour each side, together holding each instant
    of the range exactly once and nothing outside it."""
    if since >= until:
        since, until = until, since + timedelta(seconds=1)
    rollup, raw = split(since, until)
    assert sum((end - start for start, end in raw), timedelta()) < timedelta(hours=2)
    near = [edge + timedelta(microseconds=delta) for edge in (since, until) for delta in (-1, 0)]
    for moment in probes + near:
        held = sum(start <= moment < end for start, end in raw) + sum(
            start <= floor(moment, grain) < end
            for grain, intervals in rollup.items()
            for start, end in intervals
        )
        assert held == int(since <= moment < until)


# ---- what a scope spent -----------------------------------------------------------------------


def _spent_in(events: list[UsageEvent], scope: Scope, start: datetime, end: datetime) -> dict:
    """What `scope` spent in [start, end), added up from the events themselves."""
    chosen = [
        event
        for event in events
        if start <= event.timestamp < end
        and (scope.kind is None or event.kind.value == scope.kind)
        and (scope.name is None or event.name == scope.name)
        and (scope.project_id is None or event.project_id == scope.project_id)
    ]
    priced = [event.cost_usd for event in chosen if event.cost_usd is not None]
    tokens = sum(
        (event.input_tokens or 0)
        + (event.output_tokens or 0)
        + (event.cache_read_tokens or 0)
        + (event.cache_creation_tokens or 0)
        for event in chosen
    )
    return {
        "invocations": len(chosen),
        "cost_usd": sum(priced) if priced or not chosen else None,
        "unpriced_invocations": len(chosen) - len(priced),
        "tokens": tokens,
    }


def _random_events(seed: int, around: datetime, count: int = 400) -> list[UsageEvent]:
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        status = rng.choice([Status.COMPLETED, Status.COMPLETED, Status.FAILED, Status.RUNNING])
        moment = around + timedelta(seconds=rng.randrange(-40 * 86_400, 40 * 86_400))
        # Quarter dollars add up exactly in any order, so the sums compare with ==.
        cost = rng.choice([None, rng.randrange(0, 40) / 4])
        events.append(
            make_event(
                event_id=uuid.uuid4(),
                kind=rng.choice(["agent", "skill"]),
                name=rng.choice(["code-reviewer", "lint-fix", "Explore"]),
                project_id=rng.choice([None, "web", "api"]),
                timestamp=moment,
                status=status,
                cost_usd=cost,
                input_tokens=rng.randrange(0, 5000),
                output_tokens=rng.randrange(0, 900),
                cache_read_tokens=rng.choice([None, rng.randrange(0, 90_000)]),
                cache_creation_tokens=rng.randrange(0, 3000),
            )
        )
    return events


SCOPES = [
    Scope(),
    Scope(kind="agent", name="code-reviewer"),
    Scope(kind="skill", name="lint-fix"),
    Scope(project_id="web"),
    Scope(kind="agent", name="Explore", project_id="api"),
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_spend_is_what_the_invocations_of_the_period_cost(engine: Engine, zone: str) -> None:
    now = datetime(2026, 3, 9, 16, 42, 7, tzinfo=UTC)  # the day after New York's clocks moved
    events = _random_events(7, now)
    add_events(engine, *events)
    with Session(engine) as session:
        reader = SessionReader(session)
        for period in PERIODS:
            start, end = period_bounds(now, period, ZoneInfo(zone))
            for scope in SCOPES:
                spend = read_spend(reader, scope, start, end)
                assert spend._asdict() == _spent_in(events, scope, start, end), (period, scope)
                stats = usage_stats(
                    session,
                    filter=UsageFilter(
                        kind=scope.kind,
                        name=scope.name,
                        project_id=scope.project_id,
                        since=start,
                        until=end,
                    ),
                    top_errors=0,
                )
                assert spend.invocations == stats.invocations
                assert spend.tokens == stats.total_tokens
                assert spend.unpriced_invocations == stats.unpriced_invocations


def test_a_running_invocation_counts_what_it_spent_so_far(engine: Engine) -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    running = make_event(
        timestamp=now - timedelta(minutes=3),
        status=Status.RUNNING,
        cost_usd=1.25,
        input_tokens=10,
        output_tokens=5,
    )
    add_events(engine, running, make_event(timestamp=now - timedelta(hours=2), cost_usd=2.5))
    scope = Scope(kind="agent", name="code-reviewer")
    start, end = period_bounds(now, "day", ZoneInfo("UTC"))
    with Session(engine) as session:
        assert read_spend(SessionReader(session), scope, start, end).cost_usd == 3.75
    # It finishes with more spent: counted once, with its final cost.
    add_events(
        engine,
        running.model_copy(
            update={
                "status": Status.COMPLETED,
                "cost_usd": 2.0,
                "duration_seconds": 240.0,
                "finished_at": now + timedelta(minutes=1),
            }
        ),
    )
    with Session(engine) as session:
        spend = read_spend(SessionReader(session), scope, start, end)
    assert (spend.invocations, spend.cost_usd) == (2, 4.5)


def test_a_scope_that_reports_no_cost_has_an_unknown_spend(engine: Engine) -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    add_events(engine, make_event(timestamp=now, cost_usd=None), make_event(timestamp=now))
    start, end = period_bounds(now, "day", ZoneInfo("UTC"))
    with Session(engine) as session:
        reader = SessionReader(session)
        mixed = read_spend(reader, Scope(kind="agent", name="code-reviewer"), start, end)
        assert (mixed.cost_usd, mixed.unpriced_invocations) == (0.25, 1)
        nothing = read_spend(reader, Scope(kind="agent", name="nobody"), start, end)
        assert (nothing.invocations, nothing.cost_usd) == (0, 0.0)
    add_events(engine, make_event(timestamp=now, name="tokens-only", cost_usd=None))
    with Session(engine) as session:
        only = read_spend(
            SessionReader(session), Scope(kind="agent", name="tokens-only"), start, end
        )
    assert (only.cost_usd, only.unpriced_invocations) == (None, 1)


# ---- periods at their edges, in the budget's time zone ----------------------------------------


def _state(engine: Engine, now: datetime) -> BudgetState:
    with Session(engine) as session:
        [state] = budget_statuses(session, now=now)
    return state


@pytest.mark.parametrize(
    ("zone", "period", "first", "following"),
    [
        # Paris in summer is UTC+2: its day starts at 22:00 UTC the evening before.
        (
            "Europe/Paris",
            "day",
            datetime(2026, 6, 10, 22, tzinfo=UTC),
            datetime(2026, 6, 11, 22, tzinfo=UTC),
        ),
        # New York's 8 March 2026 lasts 23 hours (clocks go forward at 2:00).
        (
            "America/New_York",
            "day",
            datetime(2026, 3, 8, 5, tzinfo=UTC),
            datetime(2026, 3, 9, 4, tzinfo=UTC),
        ),
        # India is UTC+5:30: its midnights fall on half hours, read from the raw rows.
        (
            "Asia/Kolkata",
            "week",
            datetime(2026, 6, 7, 18, 30, tzinfo=UTC),
            datetime(2026, 6, 14, 18, 30, tzinfo=UTC),
        ),
        (
            "Asia/Tokyo",
            "month",
            datetime(2026, 5, 31, 15, tzinfo=UTC),
            datetime(2026, 6, 30, 15, tzinfo=UTC),
        ),
    ],
)
def test_a_budget_counts_its_own_period_in_its_time_zone(
    engine: Engine, zone: str, period: str, first: datetime, following: datetime
) -> None:
    tick = timedelta(microseconds=1)
    add_events(
        engine,
        make_event(timestamp=first - tick, cost_usd=100.0),  # the period before: not counted
        make_event(timestamp=first, cost_usd=7.5),
        make_event(timestamp=following - tick, cost_usd=2.5),  # up to a day in the future
        make_event(timestamp=following, cost_usd=100.0),  # the period after
    )
    with Session(write_engine(engine)) as session:
        set_budget(session, kind="agent", name="code-reviewer", period=period, usd=10.0, tz=zone)
        session.commit()

    state = _state(engine, first)  # the very start of the period
    assert (state.start_at, state.end_at) == (first, following)
    assert state.spent == 10.0 and state.exhausted and state.remaining == 0
    assert state.forecast is None  # no time has passed: no pace yet
    before = _state(engine, first - tick)  # the last instant of the period before
    assert before.end_at == first and before.spent == 100.0
    last = _state(engine, following - tick)
    assert last.start_at == first and last.spent == 10.0


def test_a_budget_is_spent_when_the_spend_reaches_its_limit(engine: Engine) -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    add_events(engine, make_event(timestamp=now - timedelta(hours=6), cost_usd=19.75))
    with Session(write_engine(engine)) as session:
        set_budget(session, kind="agent", name="code-reviewer", period="day", usd=20.0)
        session.commit()
    state = _state(engine, now)
    assert not state.exhausted and state.remaining == 0.25
    # Half the day gone at this pace: twice as much by its end.
    assert state.forecast == 39.5
    assert state.sentence() == (
        "budget 'code-reviewer per day' of $20.00 has $0.25 left: $19.75 today"
    )
    add_events(engine, make_event(timestamp=now, cost_usd=0.25))
    state = _state(engine, now)
    assert state.exhausted and state.remaining == 0
    assert state.sentence() == "budget 'code-reviewer per day' of $20.00 is spent: $20.00 today"


def test_a_token_budget_counts_every_kind_of_token(engine: Engine) -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    add_events(
        engine,
        make_event(
            timestamp=now,
            project_id="web",
            input_tokens=100,
            output_tokens=20,
            cache_read_tokens=3000,
            cache_creation_tokens=400,
        ),
        make_event(timestamp=now, project_id="api", input_tokens=1_000_000),
    )
    with Session(write_engine(engine)) as session:
        set_budget(session, project_id="web", period="month", tokens=3520, action="warn")
        session.commit()
    state = _state(engine, now)
    assert state.spent == 100 + 20 + 3000 + 400
    assert state.sentence() == (
        "budget 'project web per month' of 3,520 tokens is spent: 3,520 tokens this month"
    )


# ---- which budgets cover a call, and what it gets ---------------------------------------------


def _budget(**fields: object) -> Budget:
    values: dict = dict(
        id=1,
        kind="agent",
        name="code-reviewer",
        project_id=None,
        period="day",
        unit="usd",
        limit=20.0,
        action="deny",
        tz="UTC",
    )
    values.update(fields)
    return Budget(**values)


def test_deny_wins_over_warn_and_allow_says_nothing() -> None:
    from claude_api.guardrails.spend import Spend

    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    start, end = period_bounds(now, "day", ZoneInfo("UTC"))

    def state(budget: Budget, cost: float) -> BudgetState:
        return BudgetState(budget, start, end, now, Spend(1, cost, 0, 10))

    denying = state(_budget(), 20.41)
    warning = state(_budget(id=2, kind=None, name=None, action="warn", limit=5.0), 30.0)
    unspent = state(_budget(id=3, limit=100.0), 20.41)
    assert decide([warning, denying, unspent]).hook_output() == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": (
                "budget 'code-reviewer per day' of $20.00 is spent: $20.41 today"
            ),
        }
    }
    assert decide([warning, unspent]).hook_output() == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "additionalContext": (
                "Warning: budget 'everything per day' of $5.00 is spent: $30.00 today"
            ),
        }
    }
    assert decide([unspent]).hook_output() is None
    assert decide([]).hook_output() is None


def test_a_call_is_covered_by_its_own_its_projects_and_everythings_budgets(
    engine: Engine,
) -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    add_events(engine, make_event(timestamp=now, project_id="web", cost_usd=3.0))
    with Session(write_engine(engine)) as session:
        for fields in (
            {"kind": "agent", "name": "code-reviewer"},
            {"kind": "skill", "name": "code-reviewer"},  # a skill of the same name
            {"kind": "agent", "name": "Explore"},
            {"project_id": "web"},
            {"project_id": "api"},
            {"kind": "agent", "name": "code-reviewer", "project_id": "web"},
            {},
        ):
            set_budget(session, period="day", usd=1.0, **fields)
        session.commit()
        decision, states = check_budgets(
            session, kind="agent", name="code-reviewer", project_id="web", now=now
        )
    assert [state.budget.label for state in states] == [
        "code-reviewer per day",
        "project web per day",
        "code-reviewer in web per day",
        "everything per day",
    ]
    assert decision.decision == "deny" and len(decision.reasons) == 4
    with Session(engine) as session:
        _, states = check_budgets(
            session, kind="agent", name="code-reviewer", project_id=None, now=now
        )
    assert [state.budget.label for state in states] == [
        "code-reviewer per day",
        "everything per day",
    ]


# ---- setting, listing and removing ------------------------------------------------------------


def test_setting_a_budget_again_changes_it(engine: Engine) -> None:
    with Session(write_engine(engine)) as session:
        first = set_budget(session, kind="agent", name="code-reviewer", period="day", usd=20.0)
        again = set_budget(
            session,
            kind="agent",
            name="code-reviewer",
            period="day",
            usd=25.0,
            action="warn",
            tz="Europe/Paris",
        )
        tokens = set_budget(
            session, kind="agent", name="code-reviewer", period="day", tokens=1_000_000
        )
        weekly = set_budget(session, kind="agent", name="code-reviewer", period="week", usd=90.0)
        session.commit()
    assert first.created and not again.created and tokens.created and weekly.created
    assert again.budget.id == first.budget.id
    with Session(engine) as session:
        budgets = list_budgets(session)
    assert [(b.id, b.period, b.unit, b.limit, b.action, b.tz) for b in budgets] == [
        (first.budget.id, "day", "usd", 25.0, "warn", "Europe/Paris"),
        (tokens.budget.id, "day", "tokens", 1_000_000, "deny", "UTC"),
        (weekly.budget.id, "week", "usd", 90.0, "deny", "UTC"),
    ]


def test_removing_a_budget_and_projects_see_their_own(engine: Engine) -> None:
    with Session(write_engine(engine)) as session:
        web = set_budget(session, project_id="web", period="day", usd=5.0).budget
        everything = set_budget(session, period="day", usd=50.0).budget
        session.commit()
    with Session(write_engine(engine)) as session:
        assert [b.id for b in list_budgets(session, project_id="web")] == [web.id]
        with pytest.raises(NotFound):
            remove_budget(session, everything.id, project_id="web")
        assert remove_budget(session, web.id, project_id="web") == web
        session.commit()
    with Session(write_engine(engine)) as session:
        assert [b.id for b in list_budgets(session)] == [everything.id]
        with pytest.raises(NotFound):
            remove_budget(session, web.id)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"period": "year", "usd": 1.0}, "period"),
        ({"period": "day"}, "usd"),
        ({"period": "day", "usd": 1.0, "tokens": 5}, "usd"),
        ({"period": "day", "usd": 0.0}, "usd"),
        ({"period": "day", "usd": float("nan")}, "usd"),
        ({"period": "day", "usd": -3.0}, "usd"),
        ({"period": "day", "tokens": 0}, "tokens"),
        ({"period": "day", "tokens": 2.5}, "tokens"),
        ({"period": "day", "usd": 1.0, "action": "block"}, "action"),
        ({"period": "day", "usd": 1.0, "tz": "Mars/Olympus"}, "tz"),
        ({"period": "day", "usd": 1.0, "kind": "agent"}, "name"),
        ({"period": "day", "usd": 1.0, "name": "x"}, "name"),
        ({"period": "day", "usd": 1.0, "kind": "tool", "name": "x"}, "kind"),
        ({"period": "day", "usd": 1.0, "kind": "agent", "name": "x" * 201}, "name"),
        ({"period": "day", "usd": 1.0, "project_id": "a\x00b"}, "project_id"),
    ],
)
def test_bad_budgets_are_refused_and_nothing_is_written(
    engine: Engine, fields: dict, field: str
) -> None:
    with Session(write_engine(engine)) as session:
        with pytest.raises(InvalidFilter) as raised:
            set_budget(session, **fields)
        session.commit()
        assert raised.value.field == field
        assert list_budgets(session) == []
