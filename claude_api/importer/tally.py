"""Summed tokens and cost of API responses, priced one request at a time as they are added.

A response keeps the cost it reported (legacy `costUSD`); otherwise it is priced with
`claude_api.pricing` at the prices of its day. A response of an unknown model has no price, and
then the tally's cost is empty and marked unpriced: a partial sum would read as the whole.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from claude_api.events import CostSource
from claude_api.importer.records import Response
from claude_api.pricing import ModelRates, model_rates
from claude_api.spend import Request

_rates: dict[tuple[str, str], ModelRates | None] = {}


def price(request: Request, day: str) -> float | None:
    """USD cost of one request on `day` (YYYY-MM-DD), or None when its model has no price."""
    model = request.model
    if not model:
        return None
    key = (model, day)
    try:
        rates = _rates[key]
    except KeyError:
        try:
            rates = model_rates(model, date.fromisoformat(day))
        except ValueError:
            rates = model_rates(model, date.today())
        _rates[key] = rates
    if rates is None:
        return None
    return rates.cost(
        input_tokens=request.input_tokens,
        output_tokens=request.output_tokens,
        cache_read_tokens=request.cache_read_tokens,
        cache_creation_tokens=request.cache_creation_tokens,
        cache_creation_1h_tokens=request.cache_creation_1h_tokens,
    )


class Tally:
    """What some API responses spent: token sums, cost, first model, first and last time."""

    __slots__ = (
        "cache_creation_tokens",
        "cache_read_tokens",
        "cost",
        "first_at",
        "input_tokens",
        "last_at",
        "model",
        "output_tokens",
        "reported",
        "responses",
        "unpriced",
    )

    def __init__(self) -> None:
        self.responses = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_creation_tokens = 0
        self.cost = 0.0
        self.unpriced = 0  # responses without a price
        self.reported = 0  # responses whose cost was reported, not computed
        self.model: str | None = None
        self.first_at: str | None = None
        self.last_at: str | None = None

    def __bool__(self) -> bool:
        return self.responses > 0 or self.output_tokens > 0

    def add(self, response: Response) -> None:
        request = response.request
        day = response.at[:10]
        old = response.replaces
        if old is None:
            self.responses += 1
            if response.reported_cost is not None:
                self.reported += 1
                cost: float | None = response.reported_cost
            else:
                cost = price(request, day)
            self._add_tokens(request, 1)
        else:  # a larger count of a response counted before: add the difference
            new_cost, old_cost = price(request, day), price(old, day)
            cost = None if new_cost is None or old_cost is None else new_cost - old_cost
            self._add_tokens(request, 1)
            self._add_tokens(old, -1)
        if cost is None:
            self.unpriced += 1
        else:
            self.cost += cost
        if self.model is None and request.model:
            self.model = request.model
        self._touch(response.at)

    def merge(self, other: Tally) -> None:
        for name in (
            "responses", "input_tokens", "output_tokens", "cache_read_tokens",
            "cache_creation_tokens", "cost", "unpriced", "reported",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.model = self.model or other.model
        if other.first_at is not None:
            self._touch(other.first_at)
        if other.last_at is not None:
            self._touch(other.last_at)

    def _add_tokens(self, request: Request, sign: int) -> None:
        self.input_tokens += sign * request.input_tokens
        self.output_tokens += sign * request.output_tokens
        self.cache_read_tokens += sign * request.cache_read_tokens
        self.cache_creation_tokens += sign * request.cache_creation_tokens

    def _touch(self, at: str) -> None:
        if not at:
            return
        if self.first_at is None or at < self.first_at:
            self.first_at = at
        if self.last_at is None or at > self.last_at:
            self.last_at = at

    def event_fields(self) -> dict[str, Any]:
        """The token, cost and model fields of a usage event."""
        if self.unpriced:
            cost, source = None, CostSource.UNPRICED
        elif self.responses and self.reported == self.responses:
            cost, source = self.cost, CostSource.REPORTED
        else:
            cost, source = max(self.cost, 0.0), CostSource.COMPUTED
        return {
            "model": self.model,
            "input_tokens": max(self.input_tokens, 0),
            "output_tokens": max(self.output_tokens, 0),
            "cache_read_tokens": max(self.cache_read_tokens, 0),
            "cache_creation_tokens": max(self.cache_creation_tokens, 0),
            "cost_usd": cost,
            "cost_source": source,
        }

    def dump(self) -> list[Any]:
        return [getattr(self, name) for name in _FIELDS]

    @classmethod
    def load(cls, data: list[Any] | None) -> Tally:
        tally = cls()
        if data:
            for name, value in zip(_FIELDS, data, strict=False):
                setattr(tally, name, value)
        return tally


_FIELDS = (
    "responses", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
    "cost", "unpriced", "reported", "model", "first_at", "last_at",
)  # fmt: skip
