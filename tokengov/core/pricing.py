"""The price of a call (DESIGN.md): the one formula, and the pricer every stage uses.

    (input − cached_input − cache_write) × input_price
  + cached_input × cached_input_price + cache_write × cache_write_price
  + (output − reasoning) × output_price + reasoning × reasoning_price

per million tokens (:func:`_formula`, written once). Missing cache prices fall
back to the input price, a missing reasoning price to the output price. The
catalog entry whose effective date is the latest not after the call's ``ts``
applies (looked up per UTC day). A model with no price is costed 0 *and marked
unpriced* — never silently free. A cost the agent reported wins.

:class:`Pricer` prices a decoded call (:class:`tokengov.core.calls.Call`) and caches
the entry in force per (model, day):

- :meth:`Pricer.femto` — integer femto-USD (1e-15 USD), the streams' hot path:
  a price of ``p`` USD per million tokens is ``p × 10⁹`` femto-USD per token,
  exact for every price with up to nine decimals (others are rounded half-even
  to the femto-dollar);
- :meth:`Pricer.priced` — exact Decimal USD (the ClickHouse writer, the
  token-debt role): the integer formula where the entry is femto-exact, the
  same formula in Decimal otherwise.

:func:`price_call` and :func:`price_tokens` price a contract model or bare
token counts (the demo fleet, tests) with the same formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Final, Literal, NamedTuple, TypeVar

from tokengov.core.calls import Call, usd
from tokengov.core.contracts import CallEvent, TokenCounts
from tokengov.core.policy import Price, PriceCatalog

__all__ = [
    "ZERO",
    "Entry",
    "PricedCall",
    "Pricer",
    "cost_of_tokens",
    "femto_exact",
    "price_call",
    "price_tokens",
]

_PER_MILLION: Final = Decimal(1_000_000)
_PER_TOKEN: Final = Decimal(10**9)  # femto-USD per token for 1 USD per million tokens
ZERO: Final = Decimal(0)

_N = TypeVar("_N", int, Decimal)


def _formula(
    rates: tuple[_N, _N, _N, _N, _N],
    input: int,
    cached_input: int,
    cache_write: int,
    output: int,
    reasoning: int,
) -> _N:
    """DESIGN.md's formula, for rates (input, cached_input, cache_write, output, reasoning)
    in any unit: Decimal USD per million tokens, or integer femto-USD per token."""
    r_in, r_cached, r_write, r_out, r_reason = rates
    return (
        (input - cached_input - cache_write) * r_in
        + cached_input * r_cached
        + cache_write * r_write
        + (output - reasoning) * r_out
        + reasoning * r_reason
    )


def _usd_rates(price: Price) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """The entry's five prices (USD per million tokens), with the fallbacks applied."""
    cached = price.cached_input if price.cached_input is not None else price.input
    write = price.cache_write if price.cache_write is not None else price.input
    reasoning = price.reasoning if price.reasoning is not None else price.output
    return price.input, cached, write, price.output, reasoning


def femto_exact(price: Price) -> bool:
    """Whether every price of the entry is a whole number of femto-USD per token (at most
    nine decimals per million tokens): then the integer formula gives the exact cost."""
    values = (price.input, price.output, price.cached_input, price.cache_write, price.reasoning)
    return all(v is None or (v * 10**9) % 1 == 0 for v in values)


class Entry(NamedTuple):
    """The catalog entry in force for a model on a day, its rates in both units, and whether
    the femto-USD rates are exact."""

    price: Price
    usd_rates: tuple[Decimal, Decimal, Decimal, Decimal, Decimal]  # USD per million tokens
    femto_rates: tuple[int, int, int, int, int]  # femto-USD per token
    exact: bool


def _entry(price: Price) -> Entry:
    rates = _usd_rates(price)
    f = tuple(int((r * _PER_TOKEN).to_integral_value()) for r in rates)
    return Entry(price, rates, (f[0], f[1], f[2], f[3], f[4]), femto_exact(price))


@dataclass(frozen=True, slots=True)
class PricedCall:
    """What a call cost (USD) and where that came from. ``input_usd_per_token`` (only from
    :meth:`Pricer.priced` with ``input_rate=True``) is the call's average input price, its
    cache discount included: what one of its input tokens cost."""

    cost_usd: Decimal
    source: Literal["reported", "catalog", "unpriced"]
    input_usd_per_token: Decimal = ZERO

    @property
    def unpriced(self) -> bool:
        return self.source == "unpriced"

    def input_usd(self, tokens: int) -> Decimal:
        """What ``tokens`` of this call's input cost."""
        return self.input_usd_per_token * tokens


class Pricer:
    """Prices decoded calls with one catalog; the entry in force is cached per (model, day)."""

    def __init__(self, catalog: PriceCatalog) -> None:
        self.catalog = catalog
        self._cache: dict[tuple[str, date], Entry | None] = {}

    def entry(self, model: str, day: date) -> Entry | None:
        key = (model, day)
        try:
            return self._cache[key]
        except KeyError:
            pass
        if len(self._cache) > 10_000:
            self._cache.clear()
        price = self.catalog.lookup(model, datetime.combine(day, time(), UTC))
        found = self._cache[key] = None if price is None else _entry(price)
        return found

    def femto(self, call: Call) -> int | None:
        """The cost in femto-USD; a reported cost wins; None: the model has no price."""
        if call.cost_femto is not None:
            return call.cost_femto
        entry = self.entry(call.model, call.ts.date())
        if entry is None:
            return None
        return _formula(
            entry.femto_rates,
            call.input,
            call.cached_input,
            call.cache_write,
            call.output,
            call.reasoning,
        )

    def priced(self, call: Call, *, input_rate: bool = False) -> PricedCall:
        """The exact cost in USD and its source (and, with ``input_rate``, the call's
        average price of an input token)."""
        entry = self.entry(call.model, call.ts.date())
        source: Literal["reported", "catalog", "unpriced"]
        if call.cost_femto is not None:
            cost, source = usd(call.cost_femto), "reported"
        elif entry is None:
            cost, source = ZERO, "unpriced"
        elif entry.exact:
            femto = _formula(
                entry.femto_rates,
                call.input,
                call.cached_input,
                call.cache_write,
                call.output,
                call.reasoning,
            )
            cost, source = Decimal(femto).scaleb(-15), "catalog"
        else:
            micro_usd = _formula(
                entry.usd_rates,
                call.input,
                call.cached_input,
                call.cache_write,
                call.output,
                call.reasoning,
            )
            cost, source = micro_usd / _PER_MILLION, "catalog"
        if not input_rate:
            return PricedCall(cost, source)
        rate = ZERO
        if call.input:
            if entry is not None:
                input_only = _formula(
                    entry.usd_rates, call.input, call.cached_input, call.cache_write, 0, 0
                )
                rate = input_only / _PER_MILLION / call.input
            elif call.cost_femto is not None and call.tokens_total:
                # No catalog entry: spread the reported cost evenly over the call's tokens.
                rate = cost / call.tokens_total
        return PricedCall(cost, source, rate)


def cost_of_tokens(tokens: TokenCounts, price: Price) -> Decimal:
    """The cost in USD of ``tokens`` at ``price`` (the formula, in Decimal)."""
    micro_usd = _formula(
        _usd_rates(price),
        tokens.input,
        tokens.cached_input,
        tokens.cache_write,
        tokens.output,
        tokens.reasoning,
    )
    return micro_usd / _PER_MILLION


def price_tokens(
    model: str, tokens: TokenCounts, at: datetime, catalog: PriceCatalog
) -> PricedCall:
    price = catalog.lookup(model, at)
    if price is None:
        return PricedCall(ZERO, "unpriced")
    return PricedCall(cost_of_tokens(tokens, price), "catalog")


def price_call(event: CallEvent, catalog: PriceCatalog) -> PricedCall:
    """A cost the agent reported wins; otherwise the catalog prices the call."""
    if event.cost_usd is not None:
        return PricedCall(event.cost_usd, "reported")
    return price_tokens(event.model, event.tokens, event.ts, catalog)
