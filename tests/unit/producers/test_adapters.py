"""Provider usage payloads (written from the providers' documented shapes) → TokenCounts,
and the price that follows: cached, cache-write and reasoning tokens must never be mispriced."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tokengov.core.contracts import TokenCounts
from tokengov.core.errors import ContractError
from tokengov.core.policy import parse_policy
from tokengov.core.pricing import price_tokens
from tokengov.producers.adapters import (
    from_anthropic,
    from_openai_chat,
    from_openai_responses,
    from_otel_attributes,
    normalize_usage,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


CATALOG = parse_policy(
    """
version: 1
prices:
  o4-mini: {input: 1.10, output: 4.40, cached_input: 0.275}
  gpt-4.1: {input: 2.00, output: 8.00, cached_input: 0.50}
  claude-sonnet-4: {input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75}
"""
).catalog
AT = datetime(2026, 11, 29, tzinfo=UTC)


def test_openai_chat_prompt_tokens_include_cached():
    tokens = from_openai_chat(load("openai_chat.json")["usage"])
    assert tokens == TokenCounts(input=2006, output=300, cached_input=1920, reasoning=192)
    # 86 uncached input, 1920 cached, 108 visible output, 192 reasoning (priced as output)
    expected = (
        Decimal(86) * Decimal("1.10")
        + Decimal(1920) * Decimal("0.275")
        + Decimal(108) * Decimal("4.40")
        + Decimal(192) * Decimal("4.40")
    ) / Decimal(1_000_000)
    assert price_tokens("o4-mini", tokens, AT, CATALOG).cost_usd == expected


def test_openai_responses_shape():
    tokens = from_openai_responses(load("openai_responses.json")["usage"])
    assert tokens == TokenCounts(input=328, output=52, cached_input=128, reasoning=0)
    cost = price_tokens("gpt-4.1", tokens, AT, CATALOG).cost_usd
    assert cost == (Decimal(200) * 2 + Decimal(128) * Decimal("0.5") + Decimal(52) * 8) / Decimal(
        10**6
    )


def test_anthropic_input_tokens_exclude_cache_reads_and_writes():
    tokens = from_anthropic(load("anthropic_messages.json")["usage"])
    assert tokens == TokenCounts(input=21 + 188086, output=393, cached_input=0, cache_write=188086)
    cost = price_tokens("claude-sonnet-4", tokens, AT, CATALOG).cost_usd
    assert cost == (
        Decimal(21) * 3 + Decimal(188086) * Decimal("3.75") + Decimal(393) * 15
    ) / Decimal(10**6)


def test_anthropic_cache_hit_is_cheap_not_free_nor_full_price():
    tokens = from_anthropic(load("anthropic_cache_hit.json")["usage"])
    assert tokens.input == 100050 and tokens.cached_input == 100000
    cost = price_tokens("claude-sonnet-4", tokens, AT, CATALOG).cost_usd
    assert cost == (
        Decimal(50) * 3 + Decimal(100000) * Decimal("0.30") + Decimal(503) * 15
    ) / Decimal(10**6)


def test_otel_genai_attributes_include_cache_in_input():
    tokens = from_otel_attributes(load("otel_genai_span.json"))
    assert tokens == TokenCounts(
        input=1500, output=400, cached_input=1000, cache_write=200, reasoning=150
    )


def test_otel_reported_exclusive_of_cache_is_recognised():
    tokens = from_otel_attributes(
        {
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 10,
        }
    )
    assert tokens.input == 1050 and tokens.cached_input == 1000


def test_otel_legacy_prompt_completion_names():
    tokens = from_otel_attributes(
        {"gen_ai.usage.prompt_tokens": 70, "gen_ai.usage.completion_tokens": 7}
    )
    assert tokens == TokenCounts(input=70, output=7)


@pytest.mark.parametrize(
    ("provider", "fixture", "expected_input"),
    [
        ("openai", "openai_chat.json", 2006),
        ("openai", "openai_responses.json", 328),
        ("anthropic", "anthropic_messages.json", 188107),
    ],
)
def test_normalize_picks_the_adapter(provider, fixture, expected_input):
    assert normalize_usage(provider, load(fixture)["usage"]).input == expected_input


def test_sdk_objects_with_model_dump_are_accepted():
    class Usage:
        def model_dump(self):
            return {"prompt_tokens": 10, "completion_tokens": 2}

    assert normalize_usage("openai", Usage()) == TokenCounts(input=10, output=2)


def test_bad_payload_names_the_field():
    with pytest.raises(ContractError, match=r"usage.prompt_tokens_details.cached_tokens"):
        from_openai_chat({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": -3}})
    with pytest.raises(ContractError, match="cannot tell the shape"):
        normalize_usage("mystery", {"foo": 1})
