"""Pricing in the hot path: DESIGN.md's formula in integer femto-USD (1e-15 USD).

Same formula as :func:`tokengov.pricing.cost_of_tokens` — the catalog entry in
force on the call's UTC day, cache prices falling back to the input price and
the reasoning price to the output price — computed on integers: a price of
``p`` USD per million tokens is ``p × 10⁹`` femto-USD per token, exact for
every price with up to nine decimals (others are rounded half-even to the
femto-dollar). Tests check it against ``price_call`` for arbitrary calls.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Final, NamedTuple

from streams.core.events import Call
from tokengov.policy import Price, PriceCatalog

__all__ = ["Entry", "Pricer", "Rates", "femto_exact"]

_PER_TOKEN: Final = Decimal(10**9)  # femto-USD per token for 1 USD per million tokens

Rates = tuple[int, int, int, int, int]  # input, cached_input, cache_write, output, reasoning


def _rates(price: Price) -> Rates:
    def f(value: Decimal) -> int:
        return int((value * _PER_TOKEN).to_integral_value())

    cached = price.cached_input if price.cached_input is not None else price.input
    write = price.cache_write if price.cache_write is not None else price.input
    reasoning = price.reasoning if price.reasoning is not None else price.output
    return f(price.input), f(cached), f(write), f(price.output), f(reasoning)


def femto_exact(price: Price) -> bool:
    """Whether every price of the entry is a whole number of femto-USD per token (at most
    nine decimals per million tokens): then the integer formula gives the exact cost."""
    values = (price.input, price.output, price.cached_input, price.cache_write, price.reasoning)
    return all(v is None or (v * 10**9) % 1 == 0 for v in values)


class Entry(NamedTuple):
    """The catalog entry in force for a model on a day, its femto-USD rates, and whether
    those rates are exact."""

    price: Price
    rates: Rates
    exact: bool


class Pricer:
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
        found = self._cache[key] = (
            None if price is None else Entry(price, _rates(price), femto_exact(price))
        )
        return found

    def rates(self, model: str, day: date) -> Rates | None:
        found = self.entry(model, day)
        return None if found is None else found.rates

    def price(self, call: Call) -> int | None:
        """The cost in femto-USD; a reported cost wins; None: the model has no price (unpriced)."""
        if call.cost_femto is not None:
            return call.cost_femto
        rates = self.rates(call.model, call.ts.date())
        if rates is None:
            return None
        r_in, r_cached, r_write, r_out, r_reason = rates
        cached, write, reasoning = call.cached_input, call.cache_write, call.reasoning
        return (
            (call.input - cached - write) * r_in
            + cached * r_cached
            + write * r_write
            + (call.output - reasoning) * r_out
            + reasoning * r_reason
        )
