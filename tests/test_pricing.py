"""Request costs from model and tokens, checked against Anthropic's published per-MTok prices."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_api.pricing import model_rates, request_cost

MTOK = 1_000_000

# Published list prices, USD per million tokens: input, output, cache read, 5-minute cache write,
# 1-hour cache write.
SONNET_45 = (3.0, 15.0, 0.30, 3.75, 6.0)
SONNET_45_LONG = (6.0, 22.50, 0.60, 7.50, 12.0)  # a request whose prompt exceeds 200K tokens
HAIKU_45 = (1.0, 5.0, 0.10, 1.25, 2.0)
OPUS_41 = (15.0, 75.0, 1.50, 18.75, 30.0)


def expected(
    prices: tuple[float, ...], inp: int, out: int, read: int = 0, write: int = 0, write_1h: int = 0
) -> float:
    p_in, p_out, p_read, p_write, p_write_1h = prices
    return (
        inp * p_in
        + out * p_out
        + read * p_read
        + (write - write_1h) * p_write
        + write_1h * p_write_1h
    ) / MTOK


@pytest.mark.parametrize(
    ("model", "prices"),
    [
        ("claude-sonnet-4-5-20250929", SONNET_45),
        ("claude-sonnet-4-5", SONNET_45),
        ("claude-haiku-4-5-20251001", HAIKU_45),
        ("claude-opus-4-1-20250805", OPUS_41),
    ],
)
def test_request_cost_uses_published_prices(model: str, prices: tuple[float, ...]) -> None:
    cost = request_cost(
        model,
        input_tokens=12,
        output_tokens=140,
        cache_read_tokens=18_000,
        cache_creation_tokens=900,
    )
    assert cost == pytest.approx(expected(prices, 12, 140, 18_000, 900), rel=1e-9)


def test_input_tokens_exclude_cached_tokens() -> None:
    # Anthropic's input_tokens does not contain the cache reads: only 10 tokens pay full price.
    cost = request_cost(
        "claude-sonnet-4-5", input_tokens=10, output_tokens=0, cache_read_tokens=1000
    )
    assert cost == pytest.approx((10 * 3.0 + 1000 * 0.30) / MTOK)


def test_one_hour_cache_writes_cost_more() -> None:
    cost = request_cost(
        "claude-haiku-4-5",
        input_tokens=0,
        output_tokens=0,
        cache_creation_tokens=1000,
        cache_creation_1h_tokens=400,
    )
    assert cost == pytest.approx(expected(HAIKU_45, 0, 0, 0, 1000, 400))


def test_long_context_price_applies_to_the_whole_request() -> None:
    # 10 + 150,000 + 60,000 = 210,010 prompt tokens: past 200K every token, output included,
    # takes the long-context price.
    tokens = {
        "input_tokens": 10,
        "output_tokens": 500,
        "cache_read_tokens": 150_000,
        "cache_creation_tokens": 60_000,
    }
    cost = request_cost("claude-sonnet-4-5-20250929", **tokens)
    assert cost == pytest.approx(expected(SONNET_45_LONG, 10, 500, 150_000, 60_000))


def test_long_context_threshold_is_strictly_above_200k() -> None:
    cost = request_cost("claude-sonnet-4-5", input_tokens=200_000, output_tokens=1)
    assert cost == pytest.approx(expected(SONNET_45, 200_000, 1))


def test_each_request_is_priced_on_its_own_prompt() -> None:
    one = request_cost("claude-sonnet-4-5", input_tokens=120_000, output_tokens=100)
    assert one == pytest.approx(expected(SONNET_45, 120_000, 100))
    summed = request_cost("claude-sonnet-4-5", input_tokens=240_000, output_tokens=200)
    assert summed == pytest.approx(expected(SONNET_45_LONG, 240_000, 200))
    assert 2 * one < summed  # pricing a sum of requests would overcharge


@pytest.mark.parametrize("model", ["acme-unpriced-model-1", "<synthetic>", "", None])
def test_unknown_model_has_no_cost(model: str | None) -> None:
    assert request_cost(model, input_tokens=100, output_tokens=100) is None


def test_known_model_with_no_tokens_costs_zero() -> None:
    assert request_cost("claude-haiku-4-5", input_tokens=0, output_tokens=0) == 0.0


def test_prices_are_looked_up_once_per_model() -> None:
    model_rates.cache_clear()
    for tokens in range(200):
        request_cost("claude-opus-4-1", input_tokens=tokens, output_tokens=tokens)
    info = model_rates.cache_info()
    assert (info.misses, info.hits) == (1, 199)


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(
        [
            "claude-sonnet-4-5-20250929",
            "claude-haiku-4-5-20251001",
            "claude-opus-4-1-20250805",
            "claude-opus-4-6",
            "claude-sonnet-4-20250514",
            "claude-3-5-haiku-20241022",
        ]
    ),
    inp=st.integers(0, 300_000),
    out=st.integers(0, 100_000),
    read=st.integers(0, 300_000),
    write=st.integers(0, 100_000),
    share_1h=st.floats(0, 1),
)
def test_matches_genai_prices_full_calculation(
    model: str, inp: int, out: int, read: int, write: int, share_1h: float
) -> None:
    write_1h = int(write * share_1h)
    at = datetime.now(UTC)
    ours = request_cost(
        model,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=read,
        cache_creation_tokens=write,
        cache_creation_1h_tokens=write_1h,
        at=at,
    )
    # genai-prices counts cached tokens inside input_tokens.
    usage = Usage(
        input_tokens=inp + read + write,
        output_tokens=out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
    )
    theirs = calc_price(usage, model, provider_id="anthropic", genai_request_timestamp=at)
    assert ours == pytest.approx(float(theirs.total_price), rel=1e-9, abs=1e-12)
