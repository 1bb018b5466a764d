"""The pricer over the maintained catalog (genai-prices): every cost compared with the
catalog library's own ``calc_price`` (a second implementation) on calls with cached,
cache-write, 1-hour-write, reasoning, long-context and service-tier usage; real model ids
(dated snapshots, Vertex, Bedrock, provider prefixes); the policy's overrides and
discounts; sources and versions; unpriced and missing-usage calls."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price

from tests.unit.streams.builders import call
from tokengov.core.calls import Call, from_model, usd
from tokengov.core.contracts import CallEvent
from tokengov.core.errors import PolicyError
from tokengov.core.policy import PriceCatalog, parse_policy
from tokengov.core.pricing import Pricer, price_call

DAY = datetime(2026, 11, 20, 12, tzinfo=UTC)
BEFORE_BATCH_VARIANT = datetime(2026, 10, 1, 12, tzinfo=UTC)
VERSION = f"genai-prices {genai_prices.__version__}"


def event(provider: str, model: str, at: datetime = DAY, **fields: Any) -> CallEvent:
    return call(model=model, **fields).model_copy(update={"provider": provider, "ts": at})


def decoded(e: CallEvent) -> Call:
    c = from_model(e)
    assert isinstance(c, Call)
    return c


#: (provider, model, day, tokens, service tier): each usage kind the formula prices.
TABLE: list[tuple[str, str, datetime, dict[str, int], str | None]] = [
    # cache read, 5-minute and 1-hour cache writes, thinking tokens (Anthropic, dated id)
    (
        "anthropic",
        "claude-sonnet-4-20250514",
        DAY,
        dict(
            input=12_000,
            cached=3_000,
            cache_write=4_000,
            cache_write_1h=1_500,
            output=900,
            reasoning=400,
        ),
        None,
    ),
    # long context: 300k input tokens, above the 200k threshold (the whole call at that rate)
    (
        "anthropic",
        "claude-sonnet-4-5",
        DAY,
        dict(input=300_000, cached=50_000, cache_write=20_000, cache_write_1h=5_000, output=4_000),
        None,
    ),
    # just below the threshold: base rates
    ("anthropic", "claude-sonnet-4-5", DAY, dict(input=200_000, output=1_000), None),
    # batch, long context, before and after the catalog's batch prices take effect
    ("anthropic", "claude-sonnet-4-5", DAY, dict(input=250_000, output=2_000), "batch"),
    (
        "anthropic",
        "claude-sonnet-4-5",
        BEFORE_BATCH_VARIANT,
        dict(input=250_000, output=2_000),
        "batch",
    ),
    # OpenAI dated snapshot with cached input
    ("openai", "gpt-4.1-mini-2025-04-14", DAY, dict(input=5_000, cached=4_000, output=700), None),
    # OpenAI service tiers and reasoning tokens
    (
        "openai",
        "gpt-5",
        DAY,
        dict(input=8_000, cached=2_000, output=3_000, reasoning=2_200),
        "flex",
    ),
    (
        "openai",
        "gpt-5",
        DAY,
        dict(input=8_000, cached=2_000, output=3_000, reasoning=2_200),
        "priority",
    ),
    ("openai", "gpt-5", DAY, dict(input=8_000, output=3_000), "default"),
    (
        "openai",
        "o4-mini",
        DAY,
        dict(input=1_234, cached=1_024, output=5_678, reasoning=5_000),
        None,
    ),
    # Vertex, Bedrock and Azure ids
    ("google-vertex", "claude-sonnet-4@20250514", DAY, dict(input=10_000, output=500), None),
    (
        "aws.bedrock",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        DAY,
        dict(input=10_000, cached=2_000, cache_write=1_000, output=500),
        None,
    ),
    ("azure", "gpt-4.1", DAY, dict(input=10_000, cached=5_000, output=500), None),
]


def _catalog_price(
    provider: str, model: str, at: datetime, t: dict[str, int], tier: str | None
) -> Decimal:
    usage = Usage(
        input_tokens=t["input"],
        output_tokens=t["output"],
        cache_read_tokens=t.get("cached", 0),
        cache_write_tokens=t.get("cache_write", 0),
        cache_write_1h_tokens=t.get("cache_write_1h", 0),
        output_reasoning_tokens=t.get("reasoning", 0),
    )
    context = (
        None
        if tier is None
        else ({"processing": "batch"} if tier == "batch" else {"service_tier": tier})
    )
    result = calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=at, price_context=context
    )
    return result.total_price


@pytest.mark.parametrize(("provider", "model", "at", "tokens", "tier"), TABLE)
def test_cost_agrees_with_the_catalogs_own_calc_price(
    provider: str, model: str, at: datetime, tokens: dict[str, int], tier: str | None
) -> None:
    expected = _catalog_price(provider, model, at, tokens, tier)
    assert expected > 0
    e = event(provider, model, at, service_tier=tier, **tokens)
    pricer = Pricer(PriceCatalog({}))
    for _ in range(2):  # the second time from the cached rates
        priced = pricer.priced(decoded(e))
        assert (priced.source, priced.price_version) == ("catalog", VERSION)
        assert priced.cost_usd == expected  # exactly, not only to the cent
        femto = pricer.femto(decoded(e))
        assert femto is not None and usd(femto) == expected


def test_long_context_costs_more_than_the_base_rate() -> None:
    pricer = Pricer(PriceCatalog({}))
    big = pricer.priced(decoded(event("anthropic", "claude-sonnet-4-5", input=250_000, output=0)))
    # the base input rate is $3 per million, the long-context one $6: 250k tokens cost $1.50
    assert big.cost_usd == Decimal("1.5")


def test_the_1h_cache_write_has_its_own_rate() -> None:
    pricer = Pricer(PriceCatalog({}))
    five = pricer.priced(
        decoded(
            event(
                "anthropic", "claude-sonnet-4-0", input=1_000_000, cache_write=1_000_000, output=0
            )
        )
    )
    hour = pricer.priced(
        decoded(
            event(
                "anthropic",
                "claude-sonnet-4-0",
                input=1_000_000,
                cache_write=1_000_000,
                cache_write_1h=1_000_000,
                output=0,
            )
        )
    )
    assert (five.cost_usd, hour.cost_usd) == (Decimal("3.75"), Decimal("6"))


POLICY = """
version: 1
prices:
  claude-sonnet-4-20250514: {input: 2.00, output: 10.00}
  gpt-4.1-mini: {input: 0.30, output: 1.20}
  private-llm@2026-01-01: {input: 1.00, output: 2.00}
discounts:
  - provider: openai
    discount: 0.15
  - provider: openai
    model: gpt-4.1
    discount: 0.25
"""


def test_a_policy_override_wins_and_says_so() -> None:
    catalog = parse_policy(POLICY).catalog
    pricer = Pricer(catalog)
    exact = pricer.priced(
        decoded(event("anthropic", "claude-sonnet-4-20250514", input=1_000_000, output=0))
    )
    assert (exact.cost_usd, exact.source, exact.price_version) == (Decimal(2), "policy", "")
    # keyed by the catalog's id (gpt-4.1-mini), it also prices the dated snapshot
    dated = pricer.priced(
        decoded(event("openai", "gpt-4.1-mini-2025-04-14", input=1_000_000, output=1_000_000))
    )
    assert (dated.cost_usd, dated.source) == (Decimal("1.5"), "policy")
    private = pricer.priced(decoded(event("self-hosted", "private-llm", output=1_000_000, input=0)))
    assert (private.cost_usd, private.source) == (Decimal(2), "policy")


def test_discounts_apply_to_catalog_prices_most_specific_first() -> None:
    pricer = Pricer(parse_policy(POLICY).catalog)
    # gpt-5: $1.25 input list price, 15 % off for openai
    gpt5 = pricer.priced(decoded(event("openai", "gpt-5", input=1_000_000, output=0)))
    assert (gpt5.cost_usd, gpt5.source) == (Decimal("1.0625"), "catalog")
    # gpt-4.1: $2 input list price, its own 25 % off
    gpt41 = pricer.priced(decoded(event("openai", "gpt-4.1-2025-04-14", input=1_000_000, output=0)))
    assert gpt41.cost_usd == Decimal("1.5")
    # another provider: the list price
    claude = pricer.priced(
        decoded(event("anthropic", "claude-opus-4-1", input=1_000_000, output=0))
    )
    assert claude.cost_usd == Decimal(15)


def test_a_vertex_id_is_a_model_not_an_effective_date() -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy("version: 1\nprices:\n  claude-sonnet-4@20250514: {input: 1, output: 2}\n")
    problems = " ".join(refused.value.problems)
    assert "claude-sonnet-4@20250514" in problems and "YYYY-MM-DD" in problems


def test_a_discount_needs_a_scope_and_a_fraction() -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(
            "version: 1\ndiscounts:\n  - discount: 0.1\n  - provider: x\n    discount: 1.5\n"
        )
    problems = " ".join(refused.value.problems)
    assert "discounts[0]" in problems and "names a provider, a model, or both" in problems
    assert "discounts[1].discount" in problems


def test_an_unknown_model_is_unpriced() -> None:
    priced = price_call(event("openai", "gpt-99-imaginary"), PriceCatalog({}))
    assert (priced.cost_usd, priced.source, priced.price_version) == (0, "unpriced", "")
    assert Pricer(PriceCatalog({})).femto(decoded(event("acme", "nothing-known"))) is None


def test_a_known_provider_does_not_borrow_another_providers_price() -> None:
    # Anthropic does not sell gpt-4.1: not priced at OpenAI's rate behind the caller's back
    assert price_call(event("anthropic", "gpt-4.1"), PriceCatalog({})).unpriced


def test_provider_prefix_and_unknown_provider_find_the_model() -> None:
    catalog = PriceCatalog({})
    prefixed = price_call(
        event("unknown", "openai/gpt-4.1-mini", input=1_000_000, output=0), catalog
    )
    bare = price_call(event("unknown", "gpt-4.1-mini", input=1_000_000, output=0), catalog)
    known = price_call(event("openai", "openai/gpt-4.1-mini", input=1_000_000, output=0), catalog)
    assert prefixed.cost_usd == bare.cost_usd == known.cost_usd == Decimal("0.4")


def test_a_call_without_usage_costs_nothing_and_says_so() -> None:
    e = event("openai", "gpt-5", input=0, output=0, usage_missing=True)
    priced = price_call(e, PriceCatalog({}))
    assert (priced.cost_usd, priced.source) == (0, "missing_usage")
    assert Pricer(PriceCatalog({})).femto(decoded(e)) == 0
    reported = price_call(e.model_copy(update={"cost_usd": Decimal("0.01")}), PriceCatalog({}))
    assert (reported.cost_usd, reported.source) == (Decimal("0.01"), "reported")
