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

from claude_api.events import CostSource, Kind, Status, UsageEvent
from claude_api.pricing import ModelRates, model_rates

T = TypeVar("T")

SOURCE = "demo"
DEFAULT_DAYS = 120
# Days the demo leaves between its first day and the raw-row retention's horizon: its events
# outlive the purges of the week after it was made.
RETENTION_MARGIN_DAYS = 7
WEEKEND_SHARE = 0.3  # a weekend day sees this share of a weekday's tasks

MAIN_AGENT = "main"  # what the transcript import calls a session's main thread
# Custom agents that some sessions run as their main thread (`claude --agent <name>`).
MAIN_AGENTS = ["code-reviewer", "docs-writer", "release-manager"]
MAIN_AGENT_SHARE = 0.08
# Subagent types, the most used first: Claude Code's built-in ones, then custom and plugin ones.
AGENT_NAMES = [
    "Explore", "general-purpose", "Plan", "code-reviewer", "test-runner", "debugger",
    "frontend-developer", "docs-writer", "security-auditor", "db-migrator",
    "pr-review-toolkit:code-reviewer", "feature-dev:code-explorer", "feature-dev:code-architect",
    "api-designer", "performance-profiler", "release-manager", "statusline-setup",
]  # fmt: skip
# Skills, the most used first, and whether each runs forked (`context: fork`): in an agent loop
# of its own, whose tokens and cost are the skill's. An inline skill's tokens are its agent's.
SKILLS_FORKED = {
    "commit": False, "review-pr": True, "pdf": False, "xlsx": False, "frontend-design": False,
    "webapp-testing": True, "docx": False, "superpowers:brainstorming": False,
    "superpowers:systematic-debugging": False, "security-review": True, "release-notes": True,
    "skill-creator": False, "mcp-builder": False, "pptx": False, "changelog": False,
    "deploy-preview": True,
}  # fmt: skip
SKILL_NAMES = list(SKILLS_FORKED)
PROJECTS = ["web", "api", "mobile", "infra", "data"]
# The main thread's model, by share of tasks; its subagents and forked skills inherit it. The
# last two have no price in the pricing tables (a local model, another provider's endpoint):
# their invocations keep their tokens and have no cost.
MAIN_MODELS = {
    "claude-opus-4-6": 35, "claude-sonnet-4-6": 25, "claude-sonnet-4-5-20250929": 20,
    "claude-opus-4-5-20251101": 10, "claude-haiku-4-5-20251001": 7, "glm-4.6": 2,
    "qwen3-coder:30b": 1,
}  # fmt: skip
MODEL_NAMES = list(MAIN_MODELS)
MODEL_SHARES = list(accumulate(MAIN_MODELS.values()))
SMALL_MODEL = "claude-haiku-4-5-20251001"  # Claude Code runs these agents on its small model
SMALL_MODEL_AGENTS = frozenset({"Explore", "statusline-setup"})
# Claude Code compacts a conversation before its prompt fills the 200k-token context window, so
# no request reaches the long-context price tier.
MAX_PROMPT_TOKENS = 160_000
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


@dataclass(frozen=True)
class _Loop:
    """The shape of an agent loop's API requests: how many (median, and the sigma of its
    log-normal spread), the prompt of the first (system prompt, tools, CLAUDE.md), how much
    each request adds to the conversation, and the output of one request (median)."""

    turns: float
    turns_sigma: float
    first_prompt: tuple[int, int]
    growth: float
    output: float


MAIN_LOOP = _Loop(
    turns=18, turns_sigma=0.8, first_prompt=(16_000, 30_000), growth=1_800, output=240
)
SUBAGENT_LOOP = _Loop(
    turns=10, turns_sigma=0.7, first_prompt=(9_000, 16_000), growth=1_500, output=200
)
SKILL_LOOP = _Loop(turns=5, turns_sigma=0.6, first_prompt=(7_000, 12_000), growth=1_200, output=260)

_FIELDS = frozenset(UsageEvent.model_fields)
_new = object.__new__
_set = object.__setattr__
_VERSION_8 = 0x8 << 76  # RFC 9562's custom layout: a seeded random prefix and a counter
_VERSION_MASK = 0xF << 76
_VARIANT = 0b10 << 62


@dataclass(frozen=True)
class _Catalogue:
    """Every subagent type and skill with its popularity (Zipf-like, as cumulative weights), and
    the failure rate of each agent and skill."""

    agents: tuple[list[str], list[float]]
    skills: tuple[list[str], list[float]]
    failure_rate: dict[str, float]


def _catalogue(rng: random.Random, agents: int, skills: int) -> _Catalogue:
    for what, count, names in (("agents", agents, AGENT_NAMES), ("skills", skills, SKILL_NAMES)):
        if not 1 <= count <= len(names):
            raise ValueError(f"{what} must be from 1 to {len(names)}, got {count}")
    agent_names, skill_names = AGENT_NAMES[:agents], SKILL_NAMES[:skills]
    failure = {
        name: rng.choice([0.01, 0.03, 0.05, 0.1, 0.2])
        for name in [MAIN_AGENT, *MAIN_AGENTS, *agent_names]
    }
    failure |= {name: rng.choice([0.0, 0.02, 0.05, 0.15]) for name in skill_names}
    return _Catalogue(
        agents=(agent_names, list(accumulate(1 / (rank + 1) ** 1.1 for rank in range(agents)))),
        skills=(skill_names, list(accumulate(1 / (rank + 1) ** 1.2 for rank in range(skills)))),
        failure_rate=failure,
    )


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
    agents: int = len(AGENT_NAMES),
    skills: int = len(SKILL_NAMES),
) -> Iterator[UsageEvent]:
    """Exactly `count` finished invocations, task by task in the order the tasks started: each
    task has a main agent invocation (`main`, or a custom agent run as the main thread), 0-4
    subagents (of the first `agents` of AGENT_NAMES) and 0-3 skills (of the first `skills` of
    SKILL_NAMES) linked by parent ids. The tasks fill the `days` calendar days (UTC) before
    `end`'s day one day after the other, with weekday and working-hour peaks.

    Tokens are shaped like Claude Code's: mostly cache reads, a few percent cache writes, a
    handful of uncached input tokens and modest output. Costs are the pricing tables' price of
    each request (`claude_api.pricing`, cost_source `computed`); a model without a price leaves
    the cost empty (`unpriced`), and an inline skill, whose tokens are its agent's, has none.

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
        rates = {model: model_rates(model, min(midnight.date(), today)) for model in MAIN_MODELS}
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
    model = _pick(rng, MODEL_NAMES, MODEL_SHARES)
    invocation = partial(_invocation, rng, catalogue, ids, rates, task_id=task_id, project=project)
    root = rng.choice(MAIN_AGENTS) if rng.random() < MAIN_AGENT_SHARE else MAIN_AGENT
    main = invocation(Kind.AGENT, root, began, None, model, MAIN_LOOP)
    events = [main]
    subagents, skills = shape
    for _ in range(subagents):
        at = began + timedelta(seconds=rng.uniform(1, 60))
        name = _pick(rng, *catalogue.agents)
        # A task on an unpriced model reaches every model through the same endpoint.
        small = name in SMALL_MODEL_AGENTS and rates[model] is not None
        agent_model = SMALL_MODEL if small else model
        events.append(invocation(Kind.AGENT, name, at, main.event_id, agent_model, SUBAGENT_LOOP))
    agent_invocations = list(events)  # a skill runs inside an agent, never inside a skill
    for _ in range(skills):
        parent = rng.choice(agent_invocations)
        at = parent.timestamp + timedelta(seconds=rng.uniform(0.5, 30))
        name = _pick(rng, *catalogue.skills)
        loop = SKILL_LOOP if SKILLS_FORKED[name] else None
        events.append(invocation(Kind.SKILL, name, at, parent.event_id, parent.model, loop))
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
    model: str | None,
    loop: _Loop | None,
    *,
    task_id: str,
    project: str,
) -> UsageEvent:
    """One invocation: an agent loop on `model` shaped by `loop`, or, without a loop, an inline
    skill, whose tokens and cost are its agent's."""
    failed = rng.random() < catalogue.failure_rate[name]
    input_tokens = output_tokens = cache_read = cache_write = None
    cost: float | None = None
    cost_source: CostSource | None = None
    if loop is None or model is None:
        model = None
        duration = math.exp(rng.gauss(0.5, 1.0))
    else:
        turns, input_tokens, output_tokens, cache_read, cache_write = _requests(rng, loop)
        duration = turns * math.exp(rng.gauss(1.7, 0.45))  # about 5 s a request, tools included
        priced = rates[model]
        if priced is None:
            cost_source = CostSource.UNPRICED
        else:
            # Every request's prompt is below the long-context tier, so the price is linear in
            # the tokens: the requests' prices add up to `turns` times the price of their mean.
            cost = turns * priced.cost(
                input_tokens=input_tokens / turns,  # type: ignore[arg-type]
                output_tokens=output_tokens / turns,  # type: ignore[arg-type]
                cache_read_tokens=cache_read / turns,  # type: ignore[arg-type]
                cache_creation_tokens=cache_write / turns,  # type: ignore[arg-type]
                cache_creation_1h_tokens=0,
            )
            cost_source = CostSource.COMPUTED
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
            "cache_read_tokens": cache_read,
            "cache_creation_tokens": cache_write,
            "model": model,
            "error_message": rng.choice(ERRORS) if failed else None,
            "source": SOURCE,
        }
    )


def _requests(rng: random.Random, loop: _Loop) -> tuple[int, int, int, int, int]:
    """(requests, input, output, cache read, cache write tokens) of one agent loop, summed in
    closed form over its requests: the first reads the cached part of its prompt and writes the
    rest; each later one reads the whole prompt before it from the cache and writes what the
    last turn added, with a few uncached input tokens. Reads come to about 90-98% of the
    tokens, as in Claude Code's transcripts."""
    first = rng.uniform(*loop.first_prompt)
    growth = loop.growth * math.exp(rng.gauss(0, 0.5))
    turns = max(1, int(loop.turns * math.exp(rng.gauss(0, loop.turns_sigma))))
    turns = min(turns, int((MAX_PROMPT_TOKENS - first) // growth) + 1)  # compacted beyond
    first_write = first * rng.uniform(0.05, 0.3)
    later = turns - 1
    cache_read = first - first_write + later * first + growth * later * (later - 1) / 2
    cache_write = first_write + later * growth
    input_tokens = int(turns * rng.uniform(2, 12))
    output_tokens = int(turns * loop.output * math.exp(rng.gauss(0, 0.6)))
    return turns, input_tokens, output_tokens, int(cache_read), int(cache_write)


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
