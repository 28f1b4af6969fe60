"""Planned usage events for the load and fault tests: invocations as a start and a finish on the
wire, with the row each must leave, so a test can compare the database with what was sent."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fake_claude.scenarios import SONNET

START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Invocation:
    """One invocation as a start and a finish on the wire (`POST /v1/events` form)."""

    start: dict[str, Any]
    finish: dict[str, Any]

    @property
    def event_id(self) -> uuid.UUID:
        return uuid.UUID(self.finish["event_id"])

    def expected(self) -> tuple[Any, ...]:
        """The row this invocation must leave: kind, status, cost and tokens of its finish."""
        finish = self.finish
        return (
            finish["kind"],
            finish["status"],
            finish["cost_usd"],
            finish["input_tokens"],
            finish["output_tokens"],
        )


def invocations(count: int, *, source: str, seed: int) -> list[Invocation]:
    """`count` invocations of agents and skills with costs and tokens drawn from `seed`."""
    rng = random.Random(seed)
    made = []
    for index in range(count):
        kind = "skill" if index % 3 == 0 else "agent"
        at = START + timedelta(seconds=index * 7 + seed)
        start = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "kind": kind,
            "name": f"{kind}-{index % 5}",
            "task_id": f"{source}-task-{index // 10}",
            "project_id": f"project-{index % 3}",
            "timestamp": at.isoformat(),
            "status": "running",
            "source": source,
        }
        failed = index % 10 == 9
        finish = {
            **start,
            "status": "failed" if failed else "completed",
            "finished_at": (at + timedelta(seconds=rng.randint(1, 300))).isoformat(),
            "cost_usd": round(rng.uniform(0, 2), 6),
            "input_tokens": rng.randint(0, 50_000),
            "output_tokens": rng.randint(0, 5_000),
            "model": SONNET,
        }
        if failed:
            finish["error_message"] = "overloaded"
        made.append(Invocation(start, finish))
    return made
