"""A call as the debt detectors see it: the event plus what its input tokens cost."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from tokengov.contracts import CallEvent, TokenCounts
from tokengov.policy import PriceCatalog
from tokengov.pricing import cost_of_tokens, price_call

__all__ = ["Call"]

_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class Call:
    """``input_usd_per_token`` is the call's average input price (its cache discount
    included), so wasted input tokens are priced as this call paid for them;
    ``cost_usd`` is the whole call (DESIGN.md's formula, or the reported cost)."""

    event: CallEvent
    cost_usd: Decimal
    input_usd_per_token: Decimal
    priced: bool

    @classmethod
    def of(cls, event: CallEvent, catalog: PriceCatalog) -> Call:
        priced = price_call(event, catalog)
        price = catalog.lookup(event.model, event.ts)
        tokens = event.tokens
        rate = _ZERO
        if tokens.input:
            if price is not None:
                input_only = TokenCounts(
                    input=tokens.input,
                    cached_input=tokens.cached_input,
                    cache_write=tokens.cache_write,
                )
                rate = cost_of_tokens(input_only, price) / tokens.input
            elif event.cost_usd is not None and tokens.total:
                # No catalog entry: spread the reported cost evenly over the call's tokens.
                rate = event.cost_usd / tokens.total
        return cls(event, priced.cost_usd, rate, not priced.unpriced)

    def input_usd(self, tokens: int) -> Decimal:
        """What ``tokens`` of this call's input cost."""
        return self.input_usd_per_token * tokens
