"""Synthetic usage data: realistic tasks with agents, subagents and skills, for trying the service
and for benchmarks. Deterministic for a given seed."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial

from claude_api.models.events import CostSource, Kind, Status, UsageEvent
from claude_api.pricing import model_rates

SOURCE = "demo"
DEFAULT_DAYS = 120

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
ERRORS = [
    "Agent terminated early due to an API error: 529 Overloaded",
    "Reached maximum number of turns (25)",
    "Tool Bash failed: command timed out after 120000ms",
    "Error: ENOENT: no such file or directory, open 'package.json'",
    "Permission denied for tool Write",
    "Context window exceeded: prompt is too long",
]


@dataclass(frozen=True)
class _Catalogue:
    """Popularity (Zipf-like weights) and failure rate of every agent and skill."""

    agents: list[str]
    agent_weights: list[float]
    skills: list[str]
    skill_weights: list[float]
    failure_rate: dict[str, float]


def _catalogue(rng: random.Random, agents: int, skills: int) -> _Catalogue:
    agent_names = [_name(AGENT_NAMES, i) for i in range(agents)]
    skill_names = [_name(SKILL_NAMES, i) for i in range(skills)]
    rng.shuffle(agent_names)
    rng.shuffle(skill_names)
    failure = {name: rng.choice([0.01, 0.03, 0.05, 0.1, 0.2]) for name in agent_names}
    failure |= {name: rng.choice([0.0, 0.02, 0.05, 0.15]) for name in skill_names}
    return _Catalogue(
        agents=agent_names,
        agent_weights=[1 / (rank + 1) ** 1.1 for rank in range(agents)],
        skills=skill_names,
        skill_weights=[1 / (rank + 1) ** 1.2 for rank in range(skills)],
        failure_rate=failure,
    )


def _name(base: list[str], index: int) -> str:
    return base[index] if index < len(base) else f"{base[index % len(base)]}-{index // len(base)}"


def generate_events(
    count: int,
    *,
    seed: int = 0,
    end: datetime | None = None,
    days: int = DEFAULT_DAYS,
    agents: int = 40,
    skills: int = 25,
) -> Iterator[UsageEvent]:
    """About `count` finished invocations (exactly `count`), task by task: each task has a main
    agent invocation, 0-4 subagents and 0-3 skills linked by parent ids, spread over the `days`
    before `end` with weekday and working-hour peaks; costs computed from tokens and model."""
    rng = random.Random(seed)
    catalogue = _catalogue(rng, agents, skills)
    end = (end or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    namespace = uuid.UUID(int=seed)
    produced = 0
    task_number = 0
    while produced < count:
        task_number += 1
        for event in _task(rng, catalogue, namespace, task_number, start, days):
            if produced == count:
                return
            produced += 1
            yield event


def _task(
    rng: random.Random,
    catalogue: _Catalogue,
    namespace: uuid.UUID,
    number: int,
    start: datetime,
    days: int,
) -> list[UsageEvent]:
    task_id = f"demo-task-{number}"
    project = rng.choice(PROJECTS)
    began = _working_time(rng, start, days)
    invocation = partial(_invocation, rng, catalogue, namespace, task_id=task_id, project=project)
    main_agent = rng.choices(catalogue.agents, catalogue.agent_weights)[0]
    main = invocation(Kind.AGENT, main_agent, began, None, f"{number}:main")
    events = [main]
    for child in range(rng.choices([0, 1, 2, 3, 4], [30, 30, 20, 12, 8])[0]):
        name = rng.choices(catalogue.agents, catalogue.agent_weights)[0]
        at = began + timedelta(seconds=rng.uniform(1, 60))
        events.append(invocation(Kind.AGENT, name, at, main.event_id, f"{number}:agent:{child}"))
    agent_invocations = list(events)  # a skill runs inside an agent, never inside a skill
    for child in range(rng.choices([0, 1, 2, 3], [45, 35, 15, 5])[0]):
        name = rng.choices(catalogue.skills, catalogue.skill_weights)[0]
        parent = rng.choice(agent_invocations)
        at = parent.timestamp + timedelta(seconds=rng.uniform(0.5, 30))
        events.append(invocation(Kind.SKILL, name, at, parent.event_id, f"{number}:skill:{child}"))
    return events


def _working_time(rng: random.Random, start: datetime, days: int) -> datetime:
    while True:
        day = start + timedelta(days=rng.randrange(days))
        weekend = day.weekday() >= 5
        if weekend and rng.random() < 0.7:
            continue  # fewer runs at weekends
        hour = min(23, max(0, int(rng.gauss(14, 4))))
        return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))


def _invocation(
    rng: random.Random,
    catalogue: _Catalogue,
    namespace: uuid.UUID,
    kind: Kind,
    name: str,
    at: datetime,
    parent: uuid.UUID | None,
    key: str,
    *,
    task_id: str,
    project: str,
) -> UsageEvent:
    failed = rng.random() < catalogue.failure_rate[name]
    if kind is Kind.SKILL:
        duration = rng.lognormvariate(0.5, 1.0)
        model = input_tokens = output_tokens = cost = None
        cost_source = None
    else:
        model = rng.choices(list(MODELS), [share for share, _, _ in MODELS.values()])[0]
        _, typical_in, typical_out = MODELS[model]
        input_tokens = int(rng.lognormvariate(0, 0.6) * typical_in)
        output_tokens = int(rng.lognormvariate(0, 0.7) * typical_out)
        duration = rng.lognormvariate(3.2, 0.9)
        rates = model_rates(model, min(at.date(), date.today()))
        cost = (
            rates.cost(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=0,
                cache_creation_tokens=0,
                cache_creation_1h_tokens=0,
            )
            if rates is not None
            else None
        )
        cost_source = CostSource.COMPUTED if cost is not None else CostSource.UNPRICED
    # model_construct: the generator makes valid events by construction, and validating ten
    # million of them would cost more than storing them.
    return UsageEvent.model_construct(
        event_id=uuid.uuid5(namespace, key),
        kind=kind,
        name=name,
        task_id=task_id,
        parent_id=parent,
        project_id=project,
        timestamp=at,
        finished_at=at + timedelta(seconds=duration),
        status=Status.FAILED if failed else Status.COMPLETED,
        duration_seconds=duration,
        cost_usd=cost,
        cost_source=cost_source,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=None,
        cache_creation_tokens=None,
        model=model,
        error_message=rng.choice(ERRORS) if failed else None,
        source=SOURCE,
    )
