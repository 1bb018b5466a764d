"""Pricing (DESIGN.md's formula) in Decimal: cached, cache-write and reasoning tokens,
effective dates, unpriced models, and the hot path's cached lookup agreeing with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.streams.builders import call
from tokengov.core.calls import from_model, usd
from tokengov.core.contracts import TokenCounts
from tokengov.core.policy import parse_policy
from tokengov.core.pricing import Pricer, price_call, price_tokens

CATALOG = parse_policy(
    """
version: 1
prices:
  gpt-4.1-mini: {input: 0.40, output: 1.60, cached_input: 0.10}
  claude-sonnet-4: {input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75}
  claude-sonnet-4@2027-01-01: {input: 2.50, output: 12.00, cached_input: 0.25, cache_write: 3.10}
  o-think: {input: 1.00, output: 4.00, reasoning: 8.00}
  plain: {input: 2.00, output: 6.00}
  future-only@2027-06-01: {input: 1.00, output: 1.00}
"""
).catalog
NOV = datetime(2026, 11, 29, 5, tzinfo=UTC)


def cost(model: str, at: datetime = NOV, **tokens: int) -> Decimal:
    priced = price_tokens(model, TokenCounts(**tokens), at, CATALOG)
    assert priced.source == "policy"
    return priced.cost_usd


def test_cached_input_is_priced_at_the_cache_rate() -> None:
    # 400 uncached × 0.40 + 800 cached × 0.10 + 300 output × 1.60, per million
    assert cost("gpt-4.1-mini", input=1200, output=300, cached_input=800) == Decimal("0.00072")


def test_cache_write_and_reasoning_tokens() -> None:
    # uncached 10000-2000-3000 = 5000 × 3 + 2000 × 0.30 + 3000 × 3.75 + (1000-400) × 15 + 400 × 15
    got = cost(
        "claude-sonnet-4",
        input=10000,
        cached_input=2000,
        cache_write=3000,
        output=1000,
        reasoning=400,
    )
    assert got == Decimal("0.04185")


def test_reasoning_has_its_own_price_when_set() -> None:
    # 1000 input × 1 + 400 visible output × 4 + 600 reasoning × 8
    assert cost("o-think", input=1000, output=1000, reasoning=600) == Decimal("0.0074")


def test_missing_cache_prices_fall_back_to_input_and_reasoning_to_output() -> None:
    with_parts = cost(
        "plain", input=1000, cached_input=300, cache_write=200, output=500, reasoning=100
    )
    without = cost("plain", input=1000, output=500)
    assert with_parts == without == Decimal("0.005")


def test_effective_date_switches_at_utc_midnight() -> None:
    tokens = {"input": 1_000_000, "output": 1_000_000}
    before = datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    after = datetime(2027, 1, 1, tzinfo=UTC)
    assert cost("claude-sonnet-4", before, **tokens) == Decimal("18.00")
    assert cost("claude-sonnet-4", after, **tokens) == Decimal("14.50")
    # an offset timestamp is read in UTC: 2027-01-01T01:00+02:00 is still 2026 in UTC
    local = datetime(2027, 1, 1, 1, tzinfo=UTC) - timedelta(hours=2)
    assert cost("claude-sonnet-4", local, **tokens) == Decimal("18.00")


def test_unpriced_model_costs_zero_and_says_so() -> None:
    priced = price_call(call(model="gpt-9"), CATALOG)
    assert priced.cost_usd == 0 and priced.unpriced and priced.source == "unpriced"
    # a price that only takes effect later does not apply yet
    assert price_call(call(model="future-only"), CATALOG).unpriced


def test_reported_cost_wins() -> None:
    priced = price_call(call(cost="0.123"), CATALOG)
    assert priced.cost_usd == Decimal("0.123") and priced.source == "reported"


def test_cost_is_exact_decimal() -> None:
    total = sum((cost("gpt-4.1-mini", input=1, output=0) for _ in range(1000)), Decimal(0))
    assert total == Decimal("0.0004")


@given(
    model=st.sampled_from(
        [
            ("unknown", "gpt-4.1-mini"),
            ("unknown", "claude-sonnet-4"),
            ("unknown", "o-think"),
            ("unknown", "plain"),
            ("unknown", "gpt-9"),
            # the catalog's: a 1-hour cache-write price; a long-context tier (> 200k input)
            ("anthropic", "claude-opus-4-1"),
            ("google", "gemini-2.5-pro"),
        ]
    ),
    day=st.integers(min_value=-400, max_value=400),
    inp=st.integers(min_value=0, max_value=2_000_000),
    out=st.integers(min_value=0, max_value=200_000),
    split=st.tuples(*(st.floats(min_value=0, max_value=1),) * 4),
)
@example(model=("google", "gemini-2.5-pro"), day=0, inp=200_000, out=10, split=(0.5,) * 4)
@example(model=("google", "gemini-2.5-pro"), day=0, inp=200_001, out=10, split=(0.5,) * 4)
def test_hot_path_pricer_agrees_with_price_call(model, day, inp, out, split) -> None:
    provider, model = model
    cached = int(inp * split[0] / 2)
    write = int(inp * split[1] / 2)
    reasoning = int(out * split[2])
    event = call(
        model=model,
        input=inp,
        output=out,
        cached=cached,
        cache_write=write,
        cache_write_1h=int(write * split[3]),
        reasoning=reasoning,
    )
    event = event.model_copy(update={"ts": NOV + timedelta(days=day), "provider": provider})
    pricer = Pricer(CATALOG)
    expected = price_call(event, CATALOG)
    for _ in range(2):  # the second time from the cached lookup
        femto = pricer.femto(from_model(event))
        if expected.unpriced:
            assert femto is None
        else:
            assert usd(femto) == expected.cost_usd
        priced = pricer.priced(from_model(event))
        assert (priced.cost_usd, priced.source) == (expected.cost_usd, expected.source)


def test_priced_is_exact_decimal_when_a_price_has_more_than_nine_decimals() -> None:
    catalog = parse_policy(
        "version: 1\nprices:\n  tiny: {input: 0.0000000001, output: 0.0000000003}\n"
    ).catalog
    pricer = Pricer(catalog)
    tiny = from_model(call(model="tiny", input=1000, output=100))
    # (1000 × 1e-10 + 100 × 3e-10) per million tokens = 1.3e-13 USD, below a femto-USD rate
    priced = pricer.priced(tiny)
    assert (priced.cost_usd, priced.source) == (Decimal("0.00000000000013"), "policy")
    assert pricer.femto(tiny) == 0  # the hot path rounds each rate to whole femto-USD


def test_input_rate_is_what_one_input_token_of_the_call_cost() -> None:
    pricer = Pricer(CATALOG)
    # 400 uncached × 0.40 + 800 cached × 0.10 = 240 USD per million → 0.00024 for 1200 tokens
    cached = pricer.priced(from_model(call(input=1200, cached=800, output=300)), input_rate=True)
    assert cached.input_usd_per_token == Decimal("0.0000002")
    assert cached.input_usd(1200) == Decimal("0.00024")
    assert cached.cost_usd == Decimal("0.00072")
    # unpriced model, reported cost: spread evenly over its 1230 tokens
    reported = pricer.priced(
        from_model(call(model="gpt-9", input=1000, output=230, cost="0.123")), input_rate=True
    )
    assert (reported.cost_usd, reported.source) == (Decimal("0.123"), "reported")
    assert reported.input_usd_per_token == Decimal("0.0001")
    unpriced = pricer.priced(from_model(call(model="gpt-9")), input_rate=True)
    assert (unpriced.cost_usd, unpriced.source, unpriced.input_usd(10)) == (0, "unpriced", 0)


OPUS, O4, SONNET = (
    ("anthropic", "claude-opus-4-1"),
    ("openai", "o4-mini"),
    ("unknown", "claude-sonnet-4"),
)
DEC, JAN = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
WEST = timezone(timedelta(hours=-7))


@settings(max_examples=100, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    O4,  # the catalog's, a price per service tier
                    ("openai", OPUS[1]),  # not OpenAI's: unpriced
                    OPUS,
                    SONNET,  # the policy's, a new price on 2027-01-01
                ]
            ),
            st.sampled_from([None, "flex", "priority"]),
            st.sampled_from([DEC, JAN]),
            st.sampled_from([-1, 1]),  # a minute before or after that UTC midnight
            st.sampled_from([UTC, timezone(timedelta(hours=5)), WEST]),
            st.integers(min_value=1_000, max_value=300_000),
        ),
        min_size=1,
        max_size=12,
    )
)
@example(calls=[(OPUS, None, DEC, 1, UTC, 5_000), (("openai", OPUS[1]), None, DEC, 1, UTC, 5_000)])
@example(calls=[(O4, None, DEC, 1, UTC, 5_000), (O4, "priority", DEC, 1, UTC, 5_000)])
@example(calls=[(SONNET, None, JAN, -1, UTC, 5_000), (SONNET, None, JAN, 1, UTC, 5_000)])
@example(calls=[(SONNET, None, JAN, 1, UTC, 5_000), (SONNET, None, JAN, 1, WEST, 5_000)])
def test_hot_path_pricer_agrees_call_after_call(calls) -> None:
    """One pricer prices calls of models, providers, tiers and days one after another (its
    cache of the entry a model used last must not answer for another provider, tier or day,
    nor for a time that is not UTC, whose ``date()`` is that of its zone) as a new pricer
    prices each."""
    pricer = Pricer(CATALOG)
    for (provider, model), tier, midnight, minutes, zone, inp in calls:
        event = call(model=model, input=inp, output=inp // 7, cached=inp // 3, reasoning=inp // 50)
        at = midnight + timedelta(minutes=minutes)
        decoded = from_model(
            event.model_copy(update={"ts": at, "provider": provider, "service_tier": tier})
        )
        decoded.ts = at.astimezone(zone)  # the same instant (ts_ms) in another zone
        assert pricer.femto(decoded) == Pricer(CATALOG).femto(decoded)
