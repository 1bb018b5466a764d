"""Pricing in the hot path: :func:`tokengov.pricing.price_call` with the catalog lookup cached.

The formula is the project's (``tokengov.pricing.cost_of_tokens``); only the
lookup of the entry in force for a model on a UTC day is memoised.
"""

from __future__ import annotations

from datetime import UTC

from tokengov.contracts import CallEvent
from tokengov.policy import Price, PriceCatalog
from tokengov.pricing import ZERO, PricedCall, cost_of_tokens

__all__ = ["Pricer"]


class Pricer:
    def __init__(self, catalog: PriceCatalog) -> None:
        self.catalog = catalog
        self._cache: dict[tuple[str, object], Price | None] = {}

    def price(self, event: CallEvent) -> PricedCall:
        if event.cost_usd is not None:
            return PricedCall(event.cost_usd, "reported")
        key = (event.model, event.ts.astimezone(UTC).date())
        try:
            price = self._cache[key]
        except KeyError:
            price = self._cache[key] = self.catalog.lookup(event.model, event.ts)
            if len(self._cache) > 10_000:
                self._cache.clear()
        if price is None:
            return PricedCall(ZERO, "unpriced")
        return PricedCall(cost_of_tokens(event.tokens, price), "catalog")
