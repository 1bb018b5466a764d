"""The pricer's integer arithmetic (femto-USD, :meth:`Pricer.cost`) against DESIGN.md's formula
in Decimal on the catalog's own entries: every model of the maintained catalog (genai-prices),
any day, service tier and token counts the contract allows — the same value, and the same
Decimal (exponent included) that :meth:`Pricer.priced` gave before it used the integer path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from genai_prices.data_snapshot import get_snapshot
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.unit.streams.builders import call
from tokengov.core.calls import Call, from_model
from tokengov.core.policy import PriceCatalog, parse_policy
from tokengov.core.pricing import Pricer, cost_decimal

MODELS = sorted({(p.id, m.id) for p in get_snapshot().providers for m in p.models})
#: The catalog with a discount (rates × 0.87: Decimal rates with more digits) and a policy
#: price with more than nine decimals (not whole femto-USD per token: the Decimal path).
DISCOUNTED = parse_policy(
    """
version: 1
discounts:
  - {provider: openai, discount: 0.13}
  - {provider: anthropic, model: claude-sonnet-4-5, discount: 0.3333333333}
prices:
  odd-model: {input: 0.0000000001234, output: 3.1, cached_input: 0.05}
"""
).catalog
PRICERS = [Pricer(PriceCatalog({})), Pricer(DISCOUNTED)]


@st.composite
def calls(draw: st.DrawFn) -> Call:
    provider, model = draw(st.sampled_from([*MODELS, ("unknown", "odd-model")]))
    big = st.integers(0, 2**63 - 1)
    inp = draw(st.one_of(st.integers(0, 2_000_000), big))
    cached = draw(st.integers(0, inp))
    write = draw(st.integers(0, inp - cached))
    write_1h = draw(st.integers(0, write))
    out = draw(st.one_of(st.integers(0, 200_000), big))
    reasoning = draw(st.integers(0, out))
    tier = draw(st.sampled_from([None, "flex", "priority", "batch", "default"]))
    day = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=draw(st.integers(0, 1200)))
    event = call(
        model=model,
        input=inp,
        cached=cached,
        cache_write=write,
        cache_write_1h=write_1h,
        output=out,
        reasoning=reasoning,
        service_tier=tier,
    ).model_copy(update={"provider": provider, "ts": day})
    decoded = from_model(event)
    assert isinstance(decoded, Call)
    return decoded


def formula(c: Call, rates: tuple[Decimal, ...]) -> Decimal:
    """DESIGN.md's formula in Decimal: rates in USD per million tokens."""
    r_in, r_cached, r_write, r_write_1h, r_out, r_reason = rates
    return (
        (c.input - c.cached_input - c.cache_write) * r_in
        + c.cached_input * r_cached
        + (c.cache_write - c.cache_write_1h) * r_write
        + c.cache_write_1h * r_write_1h
        + (c.output - c.reasoning) * r_out
        + c.reasoning * r_reason
    ) / Decimal(1_000_000)


@settings(max_examples=600, deadline=None)
@given(c=calls(), which=st.sampled_from([0, 1]))
def test_integer_costs_are_the_decimal_formulas(c: Call, which: int) -> None:
    pricer = PRICERS[which]
    entry = pricer.entry(c.model, c.ts.date(), c.provider, c.service_tier)
    assume(entry is not None)
    assert entry is not None
    amount, source, version = pricer.cost(c)
    assert (source, version) == (entry.source, entry.version)
    got = cost_decimal(amount, source)
    expected = formula(c, entry.rates_for(c.input))
    if entry.exact:
        assert type(amount) is int
        assert got == expected, (c, entry)  # beyond 28 digits both round half-even alike
    else:
        assert type(amount) is Decimal and got == expected  # the Decimal path (28 digits)
    # The same Decimal as the pricer's other path (input_rate=True still computes it inline).
    slow = pricer.priced(c, input_rate=True).cost_usd
    assert got == slow and str(got) == str(slow)
    assert pricer.priced(c).cost_usd.as_tuple() == slow.as_tuple()
