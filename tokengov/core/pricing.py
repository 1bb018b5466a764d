"""The price of a call (DESIGN.md): the one formula, and the pricer every stage uses.

    (input − cached_input − cache_write) × input_price
  + cached_input × cached_input_price
  + (cache_write − cache_write_1h) × cache_write_price + cache_write_1h × cache_write_1h_price
  + (output − reasoning) × output_price + reasoning × reasoning_price

per million tokens (:func:`_formula`; :meth:`Pricer.cost` inlines it, tested
equal). Missing cache prices fall back to the input price (the 1-hour write to the
cache-write price), a missing reasoning price to the output price.

Where a call's rates come from, in order (``PricedCall.source``):

1. ``reported`` — a cost the agent reported wins;
2. ``missing_usage`` — the response carried no usage: 0, never a normal free call;
3. ``policy`` — the policy's ``prices:`` (overrides and additions: negotiated rates,
   private models), by the call's model name or the catalog's id for it; the entry
   whose effective date is the latest not after the call's UTC day;
4. ``catalog`` — the maintained catalog, `genai-prices <https://github.com/pydantic/genai-prices>`_
   (``price_version`` names its release): the event's provider is part of the
   lookup, real model ids match (dated snapshots, provider prefixes, Vertex, Bedrock
   and Azure ids), its prices are those in force on the call's day, for the call's
   service tier (``flex``, ``priority``, ``batch``, …), with long-context tiers; the
   policy's ``discounts:`` apply to these list prices;
5. ``unpriced`` — neither knows the model: costed 0 *and marked*, never silently free.

:class:`Pricer` prices a decoded call (:class:`tokengov.core.calls.Call`). It resolves
the rates ONCE per (provider, model, UTC day, service tier) into an :class:`Entry`
(integer femto-USD rates per token, and a long-context tier table), cached:

- :meth:`Pricer.femto` — integer femto-USD (1e-15 USD), the streams' hot path:
  a price of ``p`` USD per million tokens is ``p × 10⁹`` femto-USD per token,
  exact for every price with up to nine decimals (others are rounded half-even
  to the femto-dollar);
- :meth:`Pricer.priced` — exact Decimal USD (the ClickHouse writer, the
  token-debt role): the integer formula where the entry is femto-exact, the
  same formula in Decimal otherwise.

:func:`price_call` and :func:`price_tokens` price a contract model or bare
token counts (the demo fleet, tests) with the same pricer.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from math import gcd
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeVar

from tokengov.core.calls import (
    Call,
    CallArgs,
    call_args,
    check_call_arg_positions,
    from_model,
    usd,
)
from tokengov.core.contracts import CallEvent, TokenCounts
from tokengov.core.policy import Discount, Price, PriceCatalog

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider

__all__ = [
    "EXACT_FEMTO",
    "ZERO",
    "Cost",
    "CostSource",
    "Entry",
    "PricedCall",
    "Pricer",
    "catalog_version",
    "cost_decimal",
    "cost_of_tokens",
    "femto_exact",
    "load_catalog_data",
    "price_call",
    "price_tokens",
]

_PER_MILLION: Final = Decimal(1_000_000)
_DAY_MS: Final = 86_400_000
_PER_TOKEN: Final = Decimal(10**9)  # femto-USD per token for 1 USD per million tokens
ZERO: Final = Decimal(0)

CostSource = Literal["reported", "policy", "catalog", "unpriced", "missing_usage"]

#: A call's cost as :meth:`Pricer.cost` gives it: (amount, source, price_version). The amount
#: is integer femto-USD wherever the cost is exact in femto-USD (a reported cost, an entry
#: whose rates are whole femto-USD per token; 0 for ``unpriced`` and ``missing_usage``),
#: Decimal USD otherwise; :func:`cost_decimal` turns it into :meth:`Pricer.priced`'s Decimal.
Cost = tuple[int | Decimal, CostSource, str]
#: Femto-USD amounts in [0, EXACT_FEMTO) have an exact :func:`cost_decimal` (28 digits, the
#: default Decimal context's precision), below 10**13 USD.
EXACT_FEMTO: Final = 10**28

_N = TypeVar("_N", int, Decimal)


def _formula(
    rates: tuple[_N, _N, _N, _N, _N, _N],
    input: int,
    cached_input: int,
    cache_write: int,
    cache_write_1h: int,
    output: int,
    reasoning: int,
) -> _N:
    """DESIGN.md's formula, for rates (input, cached_input, cache_write, cache_write_1h,
    output, reasoning) in any unit: Decimal USD per million tokens, or integer femto-USD
    per token."""
    r_in, r_cached, r_write, r_write_1h, r_out, r_reason = rates
    return (
        (input - cached_input - cache_write) * r_in
        + cached_input * r_cached
        + (cache_write - cache_write_1h) * r_write
        + cache_write_1h * r_write_1h
        + (output - reasoning) * r_out
        + reasoning * r_reason
    )


def _with_fallbacks(
    input: Decimal,
    output: Decimal,
    cached_input: Decimal | None,
    cache_write: Decimal | None,
    cache_write_1h: Decimal | None,
    reasoning: Decimal | None,
) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
    cached = cached_input if cached_input is not None else input
    write = cache_write if cache_write is not None else input
    write_1h = cache_write_1h if cache_write_1h is not None else write
    reason = reasoning if reasoning is not None else output
    return input, cached, write, write_1h, output, reason


def _usd_rates(price: Price) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
    """The policy entry's six prices (USD per million tokens), with the fallbacks applied."""
    return _with_fallbacks(
        price.input,
        price.output,
        price.cached_input,
        price.cache_write,
        price.cache_write_1h,
        price.reasoning,
    )


def _exact(rates: Sequence[Decimal]) -> bool:
    return all((v * 10**9) % 1 == 0 for v in rates)


def femto_exact(price: Price) -> bool:
    """Whether every price of the entry is a whole number of femto-USD per token (at most
    nine decimals per million tokens): then the integer formula gives the exact cost."""
    return _exact(_usd_rates(price))


def _femto(rates: Sequence[Decimal]) -> tuple[int, int, int, int, int, int]:
    f = [int((r * _PER_TOKEN).to_integral_value()) for r in rates]
    return (f[0], f[1], f[2], f[3], f[4], f[5])


class Tier(NamedTuple):
    """The rates that apply when a call's input (all of it, cached included) is MORE than
    ``above`` tokens (the providers' long-context prices: the whole call at that rate)."""

    above: int
    usd_rates: tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]
    femto_rates: tuple[int, int, int, int, int, int]


class Entry(NamedTuple):
    """The rates in force for a (provider, model, day, service tier): base rates in both
    units, the long-context tiers (highest threshold first), whether the femto-USD rates are
    exact, and where they come from."""

    usd_rates: tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]  # per million
    femto_rates: tuple[int, int, int, int, int, int]  # femto-USD per token
    exact: bool
    source: Literal["policy", "catalog"]
    version: str = ""  # the catalog's release ('' for the policy)
    tiers: tuple[Tier, ...] = ()
    model_id: str = ""  # the catalog's id for the model ('' for the policy)
    provider_id: str = ""  # the catalog's provider
    discount: Discount | None = None
    price: Price | None = None  # the policy entry

    def rates_for(
        self, input_tokens: int
    ) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
        for tier in self.tiers:
            if input_tokens > tier.above:
                return tier.usd_rates
        return self.usd_rates

    def femto_rates_for(self, input_tokens: int) -> tuple[int, int, int, int, int, int]:
        for tier in self.tiers:
            if input_tokens > tier.above:
                return tier.femto_rates
        return self.femto_rates


_Coefficients = tuple[int, int, int, int, int, int, int]
#: What the hot path keeps per (provider, model, day, tier): the femto-USD rates as
#: :func:`_coefficients`, and the long-context tiers' (``above``, coefficients), highest first.
_Hot = tuple[_Coefficients, tuple[tuple[int, _Coefficients], ...]]
#: Not in the hot path's cache yet (a sentinel: the cache holds None for an unpriced model).
_UNSEEN: Final[_Hot] = ((1, 0, 0, 0, 0, 0, 0), ())
#: :meth:`Pricer.costs`' view of an entry: (its femto-USD rates, None where they are not exact
#: or there is no entry; source; version; tiers; the entry).
_Rated = tuple[
    tuple[int, int, int, int, int, int] | None, CostSource, str, "tuple[Tier, ...]", "Entry | None"
]
_RATES: Final = itemgetter(0)
_SOURCE: Final = itemgetter(1)
_VERSION: Final = itemgetter(2)


def _coefficients(rates: tuple[int, int, int, int, int, int]) -> _Coefficients:
    """:func:`_formula` over integer rates, regrouped by token count and by the rates'
    greatest common divisor ``g``: the cost is ``g × (input × c[1] + cached_input × c[2]
    + cache_write × c[3] + cache_write_1h × c[4] + output × c[5] + reasoning × c[6])``
    with ``c[0] = g`` (the same integer: each count's rate minus the rate of the count it
    is part of, divided by ``g``), so that a count of 0 costs no multiplication and the
    others multiply small integers (a price in whole USD per million tokens is 10⁹
    femto-USD a token)."""
    r_in, r_cached, r_write, r_write_1h, r_out, r_reason = rates
    c = (r_in, r_cached - r_in, r_write - r_in, r_write_1h - r_write, r_out, r_reason - r_out)
    g = gcd(*c) or 1
    return (g, c[0] // g, c[1] // g, c[2] // g, c[3] // g, c[4] // g, c[5] // g)


def _hot(entry: Entry | None) -> _Hot | None:
    if entry is None:
        return None
    tiers = tuple((tier.above, _coefficients(tier.femto_rates)) for tier in entry.tiers)
    return _coefficients(entry.femto_rates), tiers


def _same(column: Sequence[Any]) -> bool:
    """Every value of ``column`` is its first (or there is none)."""
    return not column or column.count(column[0]) == len(column)


def _policy_entry(price: Price) -> Entry:
    rates = _usd_rates(price)
    return Entry(rates, _femto(rates), _exact(rates), "policy", price=price)


# ---------------------------------------------------------------- the catalog

_CATALOG_KEYS: Final = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_mtok",
    "output_reasoning_mtok",
)


def catalog_version() -> str:
    """The catalog's release, e.g. ``genai-prices 0.2.5`` (its data ships with the release)."""
    import genai_prices

    return f"genai-prices {genai_prices.__version__}"


def _price_context(service_tier: str | None) -> dict[str, str] | None:
    """The catalog's request context for a service tier: batch is a processing mode there,
    the others (flex, priority, default, …) its service_tier."""
    if not service_tier:
        return None
    tier = service_tier.lower()
    if tier == "batch":
        return {"processing": "batch"}
    return {"service_tier": tier}


def _find(provider: str, model: str) -> tuple[Provider, ModelInfo] | None:
    """The catalog's (provider, model) for an event's provider and model. A provider the
    catalog knows: its models (and those of the providers it resells, e.g. Vertex →
    Anthropic's), the model as named or without a provider prefix (``openai/gpt-4.1``) —
    never another provider's price. A provider it does not know (``unknown``): the provider
    of a prefix (``openai/gpt-4.1``), then the provider whose models the id matches."""
    from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

    snapshot = get_snapshot()
    _, slash, rest = model.partition("/")
    refs = [model, rest] if slash and rest else [model]
    known = find_provider_by_id(snapshot.providers, provider) if provider else None
    if known is not None:
        for ref in refs:
            try:
                return snapshot.find_provider_model(ref, known, None, None)
            except LookupError:
                continue
        return None
    attempts: list[tuple[str, str | None]] = [(model, None)]
    if slash and rest:
        attempts.insert(0, (rest, model.partition("/")[0]))
    for ref, provider_id in attempts:
        try:
            return snapshot.find_provider_model(ref, None, provider_id, None)
        except LookupError:
            continue
    return None


def _catalog_rates(
    price: ModelPrice, at: int, discount: Decimal
) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal] | None:
    """The catalog's six rates for a call with ``at`` input tokens (its tiers applied), with
    the fallbacks and the discount; None: no input or output price (not a token model)."""
    from genai_prices.types import TieredPrices

    values: list[Decimal | None] = []
    for key in _CATALOG_KEYS:
        value = getattr(price, key, None)
        if isinstance(value, TieredPrices):
            chosen = value.base
            for tier in reversed(value.tiers):
                if at > tier.start:
                    chosen = tier.price
                    break
            value = chosen
        values.append(value)
    p_in, p_cached, p_write, p_write_1h, p_out, p_reason = values
    if p_in is None or p_out is None:
        return None
    rates = _with_fallbacks(p_in, p_out, p_cached, p_write, p_write_1h, p_reason)
    if discount:
        keep = 1 - discount
        return (
            rates[0] * keep,
            rates[1] * keep,
            rates[2] * keep,
            rates[3] * keep,
            rates[4] * keep,
            rates[5] * keep,
        )
    return rates


def _catalog_entry(
    provider: str, model: str, day: date, service_tier: str | None, policy: PriceCatalog
) -> Entry | Price | None:
    """The catalog's entry for the call (a policy price keyed by the catalog's model id
    wins: returned as the Price)."""
    from genai_prices.types import TieredPrices

    found = _find(provider, model)
    if found is None:
        return None
    prov, info = found
    override = policy.lookup(info.id, datetime.combine(day, time(), UTC))
    if override is not None:
        return override
    at = datetime.combine(day, time(), UTC)
    # As the catalog's own calc_price: request variants only from the provider's own models.
    context = _price_context(service_tier) if any(info is m for m in prov.models) else None
    price = info.get_prices(at, context)
    discount = policy.discount((provider, prov.id), (model, info.id))
    cut = discount.discount if discount is not None else ZERO
    base = _catalog_rates(price, 0, cut)
    if base is None:
        return None
    starts = sorted(
        {
            t.start
            for key in _CATALOG_KEYS
            if isinstance(v := getattr(price, key, None), TieredPrices)
            for t in v.tiers
        },
        reverse=True,
    )
    tiers = []
    for start in starts:
        rates = _catalog_rates(price, start + 1, cut)
        assert rates is not None  # the base has input and output prices
        tiers.append(Tier(start, rates, _femto(rates)))
    exact = _exact(base) and all(_exact(t.usd_rates) for t in tiers)
    return Entry(
        base,
        _femto(base),
        exact,
        "catalog",
        catalog_version(),
        tuple(tiers),
        info.id,
        prov.id,
        discount,
    )


# ---------------------------------------------------------------- the pricer


def cost_decimal(amount: int | Decimal, source: CostSource) -> Decimal:
    """The Decimal USD of a :data:`Cost`'s amount — exactly :meth:`Pricer.priced`'s
    ``cost_usd`` for the same call (the same value and the same exponent)."""
    if isinstance(amount, Decimal):
        return amount
    if source == "catalog" or source == "policy":
        return Decimal(amount).scaleb(-15)
    if source == "reported":
        return usd(amount)
    return ZERO  # unpriced, missing_usage


@dataclass(frozen=True, slots=True)
class PricedCall:
    """What a call cost (USD) and where that came from (``price_version``: the catalog's
    release for ``catalog``, '' otherwise). ``input_usd_per_token`` (only from
    :meth:`Pricer.priced` with ``input_rate=True``) is the call's average input price, its
    cache discount included: what one of its input tokens cost."""

    cost_usd: Decimal
    source: CostSource
    input_usd_per_token: Decimal = ZERO
    price_version: str = ""

    @property
    def unpriced(self) -> bool:
        return self.source == "unpriced"

    def input_usd(self, tokens: int) -> Decimal:
        """What ``tokens`` of this call's input cost."""
        return self.input_usd_per_token * tokens


def load_catalog_data() -> None:
    """Load the price catalog's data (genai-prices' snapshot: ~0.2 s of CPU, once per
    process) now — a process that will price calls does it before its first one."""
    from genai_prices.data_snapshot import get_snapshot

    get_snapshot()


# The positions Pricer.costs reads.
check_call_arg_positions(
    "Pricer.costs",
    {
        1: "ts",
        8: "model",
        9: "input",
        10: "output",
        11: "cached_input",
        12: "cache_write",
        13: "reasoning",
        19: "cost_femto",
        21: "provider",
        23: "cache_write_1h",
        24: "service_tier",
        25: "usage_missing",
    },
)


class Pricer:
    """Prices decoded calls: the policy's prices over the catalog; the rates in force are
    resolved once per (provider, model, UTC day, service tier) and cached."""

    def __init__(self, catalog: PriceCatalog) -> None:
        self.catalog = catalog
        self._cache: dict[tuple[str, str, date, str | None], Entry | None] = {}
        self._hot: dict[tuple[str, str, date, str | None], _Hot | None] = {}
        #: per model: the (provider, service tier, UTC day's first and past-the-last ms,
        #: _Hot) :meth:`femto` used last for a call at a UTC time — the same as ``_hot``
        #: keyed by (provider, model, day, tier), found without building that key
        self._last: dict[str, tuple[str, str | None, int, int, _Hot | None]] = {}
        self._rated: dict[tuple[str, str, date, str | None], _Rated] = {}
        # The catalog's data loads once per process (~0.2 s): here, not on the first call
        # of an unknown model in the streams' hot path.
        load_catalog_data()

    def entry(
        self, model: str, day: date, provider: str = "unknown", service_tier: str | None = None
    ) -> Entry | None:
        key = (provider, model, day, service_tier)
        try:
            return self._cache[key]
        except KeyError:
            pass
        if len(self._cache) > 10_000:
            self._cache.clear()
            self._hot.clear()
            self._last.clear()
            self._rated = {}
        found = self._cache[key] = self._resolve(model, day, provider, service_tier)
        return found

    def _resolve(
        self, model: str, day: date, provider: str, service_tier: str | None
    ) -> Entry | None:
        price = self.catalog.lookup(model, datetime.combine(day, time(), UTC))
        if price is not None:
            return _policy_entry(price)
        found = _catalog_entry(provider, model, day, service_tier, self.catalog)
        if isinstance(found, Price):
            return _policy_entry(found)
        return found

    def femto(self, call: Call) -> int | None:
        """The cost in femto-USD; a reported cost wins; a call without usage costs 0;
        None: the model has no price. The streams' hot path: one dict lookup, then the one
        formula (:func:`_formula`, in integer femto-USD)."""
        if call.cost_femto is not None:
            return call.cost_femto
        if call.usage_missing:
            return 0
        model = call.model
        last = self._last.get(model)
        ts = call.ts
        if (
            last is not None
            and last[2] <= call.ts_ms < last[3]
            and last[0] == call.provider
            and ((tier := call.service_tier) is last[1] or tier == last[1])  # None: no compare
            and ts.tzinfo is UTC  # (then ts.date() is the UTC day of ts_ms)
        ):
            hot = last[4]
        else:
            key = (call.provider, model, ts.date(), call.service_tier)
            hot = self._hot.get(key, _UNSEEN)
            if hot is _UNSEEN:
                entry = self.entry(model, key[2], call.provider, call.service_tier)
                hot = self._hot[key] = _hot(entry)
            if ts.tzinfo is UTC:
                if len(self._last) > 10_000:
                    self._last.clear()
                day_start = call.ts_ms - call.ts_ms % _DAY_MS
                self._last[model] = (key[0], key[3], day_start, day_start + _DAY_MS, hot)
        if hot is None:
            return None
        coefficients, tiers = hot
        input = call.input
        if tiers:
            for above, tier_coefficients in tiers:
                if input > above:
                    coefficients = tier_coefficients
                    break
        # _formula as _coefficients regroups it (tested equal): no multiplication by a 0 count
        scale, c_in, c_cached, c_write, c_write_1h, c_out, c_reason = coefficients
        cost = input * c_in + call.output * c_out
        count = call.cached_input
        if count:
            cost += count * c_cached
        count = call.cache_write
        if count:
            cost += count * c_write
        count = call.cache_write_1h
        if count:
            cost += count * c_write_1h
        count = call.reasoning
        if count:
            cost += count * c_reason
        return cost * scale

    def cost(self, call: Call) -> Cost:
        """The call's :data:`Cost` — what :meth:`priced` says, without building its object
        or (where the cost is exact in femto-USD) a Decimal (:meth:`costs` of one call)."""
        amounts, sources, versions = self.costs(list(zip(call_args(call))))
        return amounts[0], sources[0], versions[0]

    def _rated_view(self, key: tuple[str, str, date, str | None]) -> _Rated:
        """:meth:`costs`' view of the entry of (provider, model, UTC day, service tier)."""
        view = self._rated.get(key)
        if view is None:
            entry = self.entry(key[1], key[2], key[0], key[3])
            view = self._rated[key] = (  # (emptied with the entries when they are too many)
                (None, "unpriced", "", (), None)
                if entry is None
                else (
                    entry.femto_rates if entry.exact else None,
                    entry.source,
                    entry.version,
                    entry.tiers,
                    entry,
                )
            )
        return view

    def costs(
        self, calls: Sequence[Sequence[Any]]
    ) -> tuple[list[int | Decimal], list[CostSource], list[str]]:
        """The :data:`Cost` of each call of ``calls``, given as columns in
        :data:`~tokengov.core.calls.CALL_ARGS` order (a column of the calls'
        :data:`~tokengov.core.calls.CallArgs` each, as
        :func:`~tokengov.core.decoding.decode_call_columns` gives them), as three columns
        (amounts, sources, versions): the sink's hot path — no :class:`Call` built, the rates
        looked up once for each (provider, model, UTC day, service tier), and the usual
        column (no reported cost, every call with usage, rates exact in femto-USD without
        tiers) priced in one pass; any other call by call (:meth:`_cost_rows`)."""
        # CALL_ARGS positions: 1 ts, 8 model, 9 input, 10 output, 11 cached_input,
        # 12 cache_write, 13 reasoning, 19 cost_femto, 21 provider, 23 cache_write_1h,
        # 24 service_tier, 25 usage_missing
        provider, model, tier = calls[21], calls[8], calls[24]
        days = list(map(datetime.date, calls[1]))
        views: list[Any]  # each call's _Rated
        if _same(provider) and _same(days) and _same(tier):  # usual: one provider, day, tier
            rated = {m: self._rated_view((provider[0], m, days[0], tier[0])) for m in set(model)}
            views = list(map(rated.__getitem__, model))
            distinct = rated.values()
        else:
            keys = list(zip(provider, model, days, tier, strict=True))
            views = list(map(self._rated.get, keys))
            if None in views:
                found = {key: self._rated_view(key) for key in set(keys)}
                views = list(map(found.__getitem__, keys))
            distinct = dict(zip(map(id, views), views, strict=True)).values()
        reported = calls[19]
        if (
            reported.count(None) == len(reported)
            and True not in calls[25]
            and all(v[0] is not None and not v[3] for v in distinct)
        ):
            return (
                list(
                    map(
                        _formula,
                        map(_RATES, views),
                        calls[9],
                        calls[11],
                        calls[12],
                        calls[23],
                        calls[10],
                        calls[13],
                    )
                ),
                list(map(_SOURCE, views)),
                list(map(_VERSION, views)),
            )
        return self._cost_rows(zip(*calls, strict=True), views)

    def _cost_rows(
        self, calls: Iterable[CallArgs], views: Sequence[_Rated]
    ) -> tuple[list[int | Decimal], list[CostSource], list[str]]:
        """:meth:`costs`, call by call (``views``: each call's entry's)."""
        amounts: list[int | Decimal] = []
        sources: list[CostSource] = []
        versions: list[str] = []
        amount, source, version = amounts.append, sources.append, versions.append
        formula = _formula
        for a, rates_of in zip(calls, views, strict=True):
            if a[19] is not None:
                amount(a[19])
                source("reported")
                version("")
                continue
            if a[25]:
                amount(0)
                source("missing_usage")
                version("")
                continue
            rates, of, release, tiers, entry = rates_of
            source(of)
            version(release)
            if rates is None:  # unpriced, or a price beyond femto-USD: Decimal
                amount(0 if entry is None else self._usd(entry, Call(*a)) / _PER_MILLION)
                continue
            if tiers:
                rates = entry.femto_rates_for(a[9])  # type: ignore[union-attr]  # tiers: an entry
            amount(formula(rates, a[9], a[11], a[12], a[23], a[10], a[13]))
        return amounts, sources, versions

    def priced(self, call: Call, *, input_rate: bool = False) -> PricedCall:
        """The exact cost in USD and its source (and, with ``input_rate``, the call's
        average price of an input token)."""
        if not input_rate:
            amount, of, release = self.cost(call)
            return PricedCall(cost_decimal(amount, of), of, ZERO, release)
        entry = (
            None
            if call.usage_missing
            else self.entry(call.model, call.ts.date(), call.provider, call.service_tier)
        )
        source: CostSource
        version = ""
        if call.cost_femto is not None:
            cost, source = usd(call.cost_femto), "reported"
        elif call.usage_missing:
            cost, source = ZERO, "missing_usage"
        elif entry is None:
            cost, source = ZERO, "unpriced"
        else:
            source, version = entry.source, entry.version
            if entry.exact:
                femto = _formula(
                    entry.femto_rates_for(call.input),
                    call.input,
                    call.cached_input,
                    call.cache_write,
                    call.cache_write_1h,
                    call.output,
                    call.reasoning,
                )
                cost = Decimal(femto).scaleb(-15)
            else:
                cost = self._usd(entry, call) / _PER_MILLION
        if not input_rate:
            return PricedCall(cost, source, ZERO, version)
        rate = ZERO
        if call.input:
            if entry is not None:
                input_only = _formula(
                    entry.rates_for(call.input),
                    call.input,
                    call.cached_input,
                    call.cache_write,
                    call.cache_write_1h,
                    0,
                    0,
                )
                rate = input_only / _PER_MILLION / call.input
            elif call.cost_femto is not None and call.tokens_total:
                # No price: spread the reported cost evenly over the call's tokens.
                rate = cost / call.tokens_total
        return PricedCall(cost, source, rate, version)

    @staticmethod
    def _usd(entry: Entry, call: Call) -> Decimal:
        return _formula(
            entry.rates_for(call.input),
            call.input,
            call.cached_input,
            call.cache_write,
            call.cache_write_1h,
            call.output,
            call.reasoning,
        )


def cost_of_tokens(tokens: TokenCounts, price: Price) -> Decimal:
    """The cost in USD of ``tokens`` at a policy ``price`` (the formula, in Decimal)."""
    micro_usd = _formula(
        _usd_rates(price),
        tokens.input,
        tokens.cached_input,
        tokens.cache_write,
        tokens.cache_write_1h,
        tokens.output,
        tokens.reasoning,
    )
    return micro_usd / _PER_MILLION


_pricers: weakref.WeakKeyDictionary[PriceCatalog, Pricer] = weakref.WeakKeyDictionary()


def _pricer(catalog: PriceCatalog) -> Pricer:
    pricer = _pricers.get(catalog)
    if pricer is None:
        pricer = _pricers[catalog] = Pricer(catalog)
    return pricer


def price_tokens(
    model: str,
    tokens: TokenCounts,
    at: datetime,
    catalog: PriceCatalog,
    *,
    provider: str = "unknown",
    service_tier: str | None = None,
) -> PricedCall:
    """Bare token counts of ``model`` at ``at``, priced by the one pricer."""
    call = Call(
        "",
        at,
        "",
        "",
        "",
        "",
        None,
        0,
        model,
        tokens.input,
        tokens.output,
        tokens.cached_input,
        tokens.cache_write,
        tokens.reasoning,
        (0, 0, 0, 0, 0, 0, 0),
        1,
        0,
        None,
        "ok",
        None,
        None,
        provider,
        None,
        tokens.cache_write_1h,
        service_tier,
    )
    return _pricer(catalog).priced(call)


def price_call(event: CallEvent, catalog: PriceCatalog) -> PricedCall:
    """A cost the agent reported wins; otherwise the policy and the catalog price the call."""
    call = from_model(event)
    assert isinstance(call, Call)
    return _pricer(catalog).priced(call)
