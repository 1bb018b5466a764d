"""The price of a call (DESIGN.md), in Decimal USD.

    (input − cached_input − cache_write) × input_price
  + cached_input × cached_input_price + cache_write × cache_write_price
  + (output − reasoning) × output_price + reasoning × reasoning_price

per million tokens. Missing cache prices fall back to the input price, a
missing reasoning price to the output price. The catalog entry whose effective
date is the latest not after the call's ``ts`` applies. A model with no price is
costed 0 *and marked unpriced* — never silently free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal

from tokengov.contracts import CallEvent, TokenCounts
from tokengov.policy import Price, PriceCatalog

__all__ = ["PricedCall", "cost_of_tokens", "price_call", "price_tokens"]

_PER_MILLION: Final = Decimal(1_000_000)
ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class PricedCall:
    cost_usd: Decimal
    source: Literal["reported", "catalog", "unpriced"]

    @property
    def unpriced(self) -> bool:
        return self.source == "unpriced"


def cost_of_tokens(tokens: TokenCounts, price: Price) -> Decimal:
    cached_price = price.cached_input if price.cached_input is not None else price.input
    write_price = price.cache_write if price.cache_write is not None else price.input
    reasoning_price = price.reasoning if price.reasoning is not None else price.output
    uncached = tokens.input - tokens.cached_input - tokens.cache_write
    visible_output = tokens.output - tokens.reasoning
    micro_usd = (
        uncached * price.input
        + tokens.cached_input * cached_price
        + tokens.cache_write * write_price
        + visible_output * price.output
        + tokens.reasoning * reasoning_price
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
