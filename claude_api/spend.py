"""Tokens and cost of API responses, one per response however many messages carry it.

Shared by the executor (stream-json) and the transcript importer, so both apply one dedupe rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import count
from typing import Any

from claude_api.events import CostSource
from claude_api.pricing import request_cost

# Claude Code labels locally made error replies with this model; they cost nothing.
SYNTHETIC_MODEL = "<synthetic>"


@dataclass(frozen=True)
class Request:
    """The usage of one API response (Anthropic's fields: input excludes cached tokens)."""

    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cache_creation_1h_tokens: int

    @classmethod
    def from_usage(cls, usage: Mapping[str, Any], model: str | None) -> Request:
        """Read an API `usage` object; missing or malformed counts are 0."""
        cache_creation = usage.get("cache_creation")
        one_hour = (
            cache_creation.get("ephemeral_1h_input_tokens")
            if isinstance(cache_creation, Mapping)
            else None
        )
        return cls(
            model=model,
            input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")),
            cache_read_tokens=_count(usage.get("cache_read_input_tokens")),
            cache_creation_tokens=_count(usage.get("cache_creation_input_tokens")),
            cache_creation_1h_tokens=_count(one_hour),
        )

    def cost(self) -> float | None:
        return request_cost(
            self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_creation_tokens=self.cache_creation_tokens,
            cache_creation_1h_tokens=self.cache_creation_1h_tokens,
        )


@dataclass(frozen=True)
class Spend:
    """What an invocation spent: summed tokens, and a cost computed per request."""

    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float | None
    cost_source: CostSource

    @classmethod
    def of(cls, requests: list[Request]) -> Spend:
        """Sum `requests`; the cost stays empty when any of them has an unknown price, since a
        partial sum would read as the whole."""
        costs = [request.cost() for request in requests]
        priced = all(cost is not None for cost in costs)
        return cls(
            model=next((request.model for request in requests if request.model), None),
            input_tokens=sum(request.input_tokens for request in requests),
            output_tokens=sum(request.output_tokens for request in requests),
            cache_read_tokens=sum(request.cache_read_tokens for request in requests),
            cache_creation_tokens=sum(request.cache_creation_tokens for request in requests),
            cost_usd=sum(cost for cost in costs if cost is not None) if priced else None,
            cost_source=CostSource.COMPUTED if priced else CostSource.UNPRICED,
        )

    def event_fields(self) -> dict[str, Any]:
        """The fields of a usage event this spend fills in."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
        }


class Responses:
    """One agent's API responses keyed by message id.

    Claude Code streams one message per content block, each with the response's usage; early
    ones may carry a placeholder output count, so the largest output count is kept.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Request] = {}
        self._anonymous = count()

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def add(self, message: Mapping[str, Any]) -> None:
        """Record an assistant `message` (the API message object) if it carries usage."""
        usage = message.get("usage")
        model = message.get("model")
        if not isinstance(usage, Mapping) or model == SYNTHETIC_MODEL:
            return
        request = Request.from_usage(usage, model if isinstance(model, str) else None)
        message_id = message.get("id")
        key = message_id if isinstance(message_id, str) else f"#{next(self._anonymous)}"
        seen = self._by_id.get(key)
        if seen is None or supersedes(request, seen):
            self._by_id[key] = request

    def spend(self) -> Spend | None:
        """The summed spend, or None when no response was seen."""
        return Spend.of(list(self._by_id.values())) if self._by_id else None

    def priced_cost(self) -> float:
        """What the responses of a known price cost (the others count nothing)."""
        costs = (request.cost() for request in self._by_id.values())
        return sum(cost for cost in costs if cost is not None)


def supersedes(new: Request, seen: Request) -> bool:
    """Whether `new`, another message of the response `seen` came from, replaces it.

    Claude Code writes one message per content block, each with the response's usage; early ones
    may carry the placeholder output count of `message_start`, so the largest output count wins
    (the other counts are the same on every message of a response).
    """
    return new.output_tokens > seen.output_tokens


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
