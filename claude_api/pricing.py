"""What one Anthropic API request cost, from its model and token counts (genai-prices tables).

Prices are looked up once per model and day and then multiplied here: a full `calc_price` call
per request costs hundreds of microseconds, a multiplication next to nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.types import ModelPrice, TieredPrices

logger = logging.getLogger(__name__)

PREFERRED_PROVIDER = "anthropic"
_TOKENS_PER_PRICE_UNIT = 1_000_000  # genai-prices quotes token prices per million


@dataclass(frozen=True)
class Rate:
    """USD per token, and the long-context tiers that replace it for a whole request."""

    base: float
    tiers: tuple[tuple[int, float], ...] = ()  # (prompt tokens above which it applies, price)

    def at(self, prompt_tokens: int) -> float:
        """The per-token price for a request whose prompt (cached tokens included) has this size."""
        price = self.base
        for start, tier_price in self.tiers:
            if prompt_tokens > start:
                price = tier_price
        return price


@dataclass(frozen=True)
class ModelRates:
    """A model's token prices; a missing cache price falls back the way genai-prices does."""

    model_id: str
    input: Rate
    output: Rate | None
    cache_read: Rate | None
    cache_write: Rate | None
    cache_write_1h: Rate | None

    def cost(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_creation_tokens: int,
        cache_creation_1h_tokens: int,
    ) -> float:
        """Cost of one request; `input_tokens` excludes cached tokens (Anthropic's convention)."""
        prompt = input_tokens + cache_read_tokens + cache_creation_tokens
        input_rate = self.input.at(prompt)
        write_rate = self.cache_write.at(prompt) if self.cache_write else input_rate
        write_1h_rate = self.cache_write_1h.at(prompt) if self.cache_write_1h else write_rate
        write_1h = min(cache_creation_1h_tokens, cache_creation_tokens)
        return (
            input_tokens * input_rate
            + output_tokens * (self.output.at(prompt) if self.output else 0.0)
            + cache_read_tokens * (self.cache_read.at(prompt) if self.cache_read else input_rate)
            + (cache_creation_tokens - write_1h) * write_rate
            + write_1h * write_1h_rate
        )


def request_cost(
    model: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
    cache_creation_1h_tokens: int = 0,
    at: datetime | None = None,
) -> float | None:
    """USD cost of one API request, or None when the model has no known price (never 0).

    Token counts follow Anthropic's usage object: `input_tokens` excludes cache reads and
    writes; `cache_creation_1h_tokens` is the part of `cache_creation_tokens` cached for an hour.
    Price one request at a time: long-context prices depend on each request's prompt size.
    """
    if not model:
        return None
    rates = model_rates(model, (at or datetime.now(UTC)).astimezone(UTC).date())
    if rates is None:
        return None
    return rates.cost(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_creation_tokens=cache_creation_tokens,
        cache_creation_1h_tokens=cache_creation_1h_tokens,
    )


@lru_cache(maxsize=512)
def model_rates(model: str, day: date) -> ModelRates | None:
    """The token prices of `model` in force on `day`, or None when it has none."""
    when = datetime.combine(day, time(12), tzinfo=UTC)
    price: ModelPrice | None = None
    model_id = model
    # Anthropic first: the same name may be listed by resellers at other prices.
    for provider in (PREFERRED_PROVIDER, None):
        try:
            calculation = calc_price(
                Usage(input_tokens=0, output_tokens=0),
                model,
                provider_id=provider,
                genai_request_timestamp=when,
            )
        except LookupError:
            continue
        price, model_id = calculation.model_price, calculation.model.id
        break
    if price is None:
        logger.debug("no price known for model %r", model)
        return None
    input_rate = _rate(price.input_mtok)
    if input_rate is None:
        logger.debug("model %r has no token price", model)
        return None
    return ModelRates(
        model_id=model_id,
        input=input_rate,
        output=_rate(price.output_mtok),
        cache_read=_rate(price.cache_read_mtok),
        cache_write=_rate(price.cache_write_mtok),
        cache_write_1h=_rate(price.cache_write_1h_mtok),
    )


def _rate(price: Decimal | TieredPrices | None) -> Rate | None:
    if price is None:
        return None
    if isinstance(price, TieredPrices):
        tiers = tuple(
            (tier.start, float(tier.price) / _TOKENS_PER_PRICE_UNIT)
            for tier in sorted(price.tiers, key=lambda tier: tier.start)
        )
        return Rate(float(price.base) / _TOKENS_PER_PRICE_UNIT, tiers)
    return Rate(float(price) / _TOKENS_PER_PRICE_UNIT)
