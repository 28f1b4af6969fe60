"""Synthetic usage data: realistic tasks with agents, subagents and skills, for trying the service
and for benchmarks. Deterministic for a given seed."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from bisect import bisect
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import accumulate, islice
from typing import TypeVar

from claude_api.models.events import CostSource, Kind, Status, UsageEvent
from claude_api.pricing import ModelRates, model_rates

T = TypeVar("T")

SOURCE = "demo"
DEFAULT_DAYS = 120
# Days the demo leaves between its first day and the raw-row retention's horizon: its events
# outlive the purges of the week after it was made.
RETENTION_MARGIN_DAYS = 7
WEEKEND_SHARE = 0.3  # a weekend day sees this share of a weekday's tasks

AGENT_NAMES = [
    "code-reviewer", "Explore", "Plan", "general-purpose", "test-runner", "debugger",
    "doc-writer", "security-auditor", "refactorer", "migration-helper", "api-designer",
    "perf-analyst", "release-manager", "dependency-updater", "ui-tester", "data-engineer",
    "sql-optimizer", "incident-responder", "triage-bot", "changelog-writer",
]  # fmt: skip
SKILL_NAMES = [
    "lint-fix", "commit", "pdf", "xlsx", "review-pr", "write-tests", "deploy", "summarize",
    "translate", "format", "bump-version", "security-scan", "benchmark", "explain-code",
]  # fmt: skip
PROJECTS = ["web", "api", "mobile", "infra", "data"]
MODELS = {  # model: (share of invocations, typical input tokens, typical output tokens)
    "claude-sonnet-4-5": (0.6, 4_000, 900),
    "claude-haiku-4-5": (0.3, 2_000, 400),
    "claude-opus-4-1": (0.1, 6_000, 1_200),
}
MODEL_NAMES = list(MODELS)
MODEL_SHARES = list(accumulate(share for share, _, _ in MODELS.values()))
# (counts, cumulative weights): how many subagents and skills one task runs
SUBAGENTS = ([0, 1, 2, 3, 4], list(accumulate([30, 30, 20, 12, 8])))
SKILLS = ([0, 1, 2, 3], list(accumulate([45, 35, 15, 5])))
ERRORS = [
    "Agent terminated early due to an API error: 529 Overloaded",
    "Reached maximum number of turns (25)",
    "Tool Bash failed: command timed out after 120000ms",
    "Error: ENOENT: no such file or directory, open 'package.json'",
    "Permission denied for tool Write",
    "Context window exceeded: prompt is too long",
]

_FIELDS = frozenset(UsageEvent.model_fields)
_new = object.__new__
_set = object.__setattr__
_VERSION_8 = 0x8 << 76  # RFC 9562's custom layout: a seeded random prefix and a counter
_VERSION_MASK = 0xF << 76
_VARIANT = 0b10 << 62


@dataclass(frozen=True)
class _Catalogue:
    """Every agent and skill with its popularity (Zipf-like, as cumulative weights), and the
    failure rate of each."""

    agents: tuple[list[str], list[float]]
    skills: tuple[list[str], list[float]]
    failure_rate: dict[str, float]


def _catalogue(rng: random.Random, agents: int, skills: int) -> _Catalogue:
    agent_names = [_name(AGENT_NAMES, i) for i in range(agents)]
    skill_names = [_name(SKILL_NAMES, i) for i in range(skills)]
    rng.shuffle(agent_names)
    rng.shuffle(skill_names)
    failure = {name: rng.choice([0.01, 0.03, 0.05, 0.1, 0.2]) for name in agent_names}
    failure |= {name: rng.choice([0.0, 0.02, 0.05, 0.15]) for name in skill_names}
    return _Catalogue(
        agents=(agent_names, list(accumulate(1 / (rank + 1) ** 1.1 for rank in range(agents)))),
        skills=(skill_names, list(accumulate(1 / (rank + 1) ** 1.2 for rank in range(skills)))),
        failure_rate=failure,
    )


def _name(base: list[str], index: int) -> str:
    return base[index] if index < len(base) else f"{base[index % len(base)]}-{index // len(base)}"


def days_within(retention_days: int) -> int:
    """How many days a demo spreads over by default: DEFAULT_DAYS when the raw rows are kept
    for good (0), else the retention less RETENTION_MARGIN_DAYS (at least 1, at most
    DEFAULT_DAYS), so that the server's purges keep every event for a week."""
    if not retention_days:
        return DEFAULT_DAYS
    return max(1, min(DEFAULT_DAYS, retention_days - RETENTION_MARGIN_DAYS))


def longest_within(retention_days: int) -> int | None:
    """The most days a demo may spread over so that the purge of the next day still keeps every
    event: the retention less one day (at least 1); None when the raw rows are kept for good."""
    return max(1, retention_days - 1) if retention_days else None


def kept_until(days: int, retention_days: int, today: date) -> date | None:
    """The last day on which the purges still keep every event of a demo made `today` over the
    `days` days before it; None when the raw rows are kept for good.

    A purge on day D deletes what started before D - retention; the demo starts on
    today - days."""
    return today + timedelta(days=retention_days - days) if retention_days else None


def generate_events(
    count: int,
    *,
    seed: int = 0,
    end: datetime | None = None,
    days: int = DEFAULT_DAYS,
    agents: int = 40,
    skills: int = 25,
) -> Iterator[UsageEvent]:
    """Exactly `count` finished invocations, task by task in the order the tasks started: each
    task has a main agent invocation, 0-4 subagents and 0-3 skills linked by parent ids. The
    tasks fill the `days` calendar days (UTC) before `end`'s day one day after the other, with
    weekday and working-hour peaks; costs are computed from tokens and model.

    Chronological order lets a bulk writer touch only the few hour rollups of its batch's
    time span."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    rng = random.Random(seed)
    catalogue = _catalogue(rng, agents, skills)
    end = (end or datetime.now(UTC)).astimezone(UTC)
    first_day = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    weights = [
        (WEEKEND_SHARE if (first_day + timedelta(days=day)).weekday() >= 5 else 1.0)
        * rng.uniform(0.85, 1.15)
        for day in range(days)
    ]
    total = sum(weights)
    # Event ids count up from a prefix drawn from the seed: the same seed makes the same ids
    # (a second run adds nothing), and ids made in time order keep the id indexes' inserts
    # at the end of the index instead of all over it.
    prefix = (rng.getrandbits(64) << 64) & ~_VERSION_MASK | _VERSION_8 | _VARIANT
    ids = (uuid.UUID(int=prefix | number) for number in itertools.count(1))
    today = date.today()
    produced = 0
    tasks = 0
    reached = 0.0
    for day, weight in enumerate(weights):
        reached += weight
        # Each day's share of `count`, rounded on the running total so that the days add up to
        # exactly `count`; the last task of the last day is cut to fit.
        quota = count if day == days - 1 else round(count * reached / total)
        if produced >= quota:
            continue
        midnight = first_day + timedelta(days=day)
        rates = {model: model_rates(model, min(midnight.date(), today)) for model in MODELS}
        shapes = []
        planned = produced
        while planned < quota:
            shape = _task_shape(rng)
            shapes.append(shape)
            planned += 1 + shape[0] + shape[1]
        starts = sorted(_working_second(rng) for _ in shapes)
        for second, shape in zip(starts, shapes, strict=True):
            tasks += 1
            began = midnight + timedelta(seconds=second)
            for event in _task(rng, catalogue, ids, rates, tasks, began, shape):
                if produced == count:
                    return
                produced += 1
                yield event


def batches_ahead(events: Iterable[UsageEvent], size: int) -> Iterator[list[UsageEvent]]:
    """`events` in lists of `size`, each list made on a background thread while the caller
    stores the one before: the database releases the interpreter while it writes, so making
    and storing events overlap on two cores."""
    iterator = iter(events)

    def take() -> list[UsageEvent]:
        return list(islice(iterator, size))

    with ThreadPoolExecutor(1, thread_name_prefix="demo-events") as pool:
        pending = pool.submit(take)
        while batch := pending.result():
            pending = pool.submit(take)
            yield batch


def _task_shape(rng: random.Random) -> tuple[int, int]:
    """How many subagents and skills a task runs."""
    return _pick(rng, *SUBAGENTS), _pick(rng, *SKILLS)


def _working_second(rng: random.Random) -> float:
    """When in its day (seconds after midnight) a task starts: mostly in working hours."""
    hour = min(23, max(0, int(rng.gauss(14, 4))))
    return hour * 3600 + rng.random() * 3600


def _pick(rng: random.Random, items: Sequence[T], cumulative: Sequence[float]) -> T:
    """One of `items`, drawn with the given cumulative weights (`random.choices`, k=1)."""
    return items[bisect(cumulative, rng.random() * cumulative[-1])]


def _task(
    rng: random.Random,
    catalogue: _Catalogue,
    ids: Iterator[uuid.UUID],
    rates: dict[str, ModelRates | None],
    number: int,
    began: datetime,
    shape: tuple[int, int],
) -> list[UsageEvent]:
    """A task's invocations, in the order they started."""
    task_id = f"demo-task-{number}"
    project = rng.choice(PROJECTS)
    invocation = partial(_invocation, rng, catalogue, ids, rates, task_id=task_id, project=project)
    main = invocation(Kind.AGENT, _pick(rng, *catalogue.agents), began, None)
    events = [main]
    subagents, skills = shape
    for _ in range(subagents):
        at = began + timedelta(seconds=rng.uniform(1, 60))
        events.append(invocation(Kind.AGENT, _pick(rng, *catalogue.agents), at, main.event_id))
    agent_invocations = list(events)  # a skill runs inside an agent, never inside a skill
    for _ in range(skills):
        parent = rng.choice(agent_invocations)
        at = parent.timestamp + timedelta(seconds=rng.uniform(0.5, 30))
        events.append(invocation(Kind.SKILL, _pick(rng, *catalogue.skills), at, parent.event_id))
    events.sort(key=_started)  # stable: the main invocation stays first
    return events


def _started(event: UsageEvent) -> datetime:
    return event.timestamp


def _invocation(
    rng: random.Random,
    catalogue: _Catalogue,
    ids: Iterator[uuid.UUID],
    rates: dict[str, ModelRates | None],
    kind: Kind,
    name: str,
    at: datetime,
    parent: uuid.UUID | None,
    *,
    task_id: str,
    project: str,
) -> UsageEvent:
    failed = rng.random() < catalogue.failure_rate[name]
    if kind is Kind.SKILL:
        duration = math.exp(rng.gauss(0.5, 1.0))
        model = input_tokens = output_tokens = cost = None
        cost_source = None
    else:
        model = _pick(rng, MODEL_NAMES, MODEL_SHARES)
        _, typical_in, typical_out = MODELS[model]
        input_tokens = int(math.exp(rng.gauss(0, 0.6)) * typical_in)
        output_tokens = int(math.exp(rng.gauss(0, 0.7)) * typical_out)
        duration = math.exp(rng.gauss(3.2, 0.9))
        priced = rates[model]
        cost = (
            priced.cost(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=0,
                cache_creation_tokens=0,
                cache_creation_1h_tokens=0,
            )
            if priced is not None
            else None
        )
        cost_source = CostSource.COMPUTED if cost is not None else CostSource.UNPRICED
    return _event(
        {
            "event_id": next(ids),
            "kind": kind,
            "name": name,
            "task_id": task_id,
            "parent_id": parent,
            "project_id": project,
            "timestamp": at,
            "finished_at": at + timedelta(seconds=duration),
            "status": Status.FAILED if failed else Status.COMPLETED,
            "duration_seconds": duration,
            "cost_usd": cost,
            "cost_source": cost_source,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": None,
            "cache_creation_tokens": None,
            "model": model,
            "error_message": rng.choice(ERRORS) if failed else None,
            "source": SOURCE,
        }
    )


def _event(values: dict[str, object]) -> UsageEvent:
    """`UsageEvent.model_construct(**values)` for values that name every field: no validation,
    the generator makes valid events by construction. model_construct's loop over the fields
    costs about 4 µs an event, as much as the rest of the generator; given every field, it
    comes down to these four assignments."""
    event = _new(UsageEvent)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", set(_FIELDS))
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event
