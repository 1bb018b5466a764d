"""One closed (or provisional) task's calls by column: what the detectors read.

The engine keeps an open task's decoded calls as they arrive, unpriced and untouched. When
the task closes it sorts them into event-time order once, groups them by agent once, and
reads every column once (the seven input components in one ``zip``), so the detectors
compute with builtins (``sum``, ``max``, ``zip``) over tuples of ints instead of walking call
objects. Prices are resolved lazily: the input price of every call only when a detector
prices its tokens (:meth:`Columns.rates`), the whole cost only for the calls a detector
judges wasted (:meth:`Columns.cost_usd`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import cache, reduce
from itertools import compress, count, pairwise, repeat
from math import gcd
from operator import add, attrgetter, floordiv, ge, itemgetter, mul, truediv
from typing import Any, Final

from tokengov.core.calls import Call
from tokengov.core.pricing import Entry, Pricer

__all__ = [
    "Columns",
    "InputPrices",
    "PricedColumns",
    "TaskBatch",
    "TaskCalls",
    "femto_inputs",
    "in_order",
    "input_rates",
]

_ZERO: Final = Decimal(0)
_UNSEEN: Final[Any] = object()  # not in the InputPrices' cache yet (it holds None too)
#: The columns read from every call, in one pass.
_ROW: Final = attrgetter("input", "cached_input", "tool_calls", "attempt", "components")
_TOOL_NAME: Final = attrgetter("tool_name")
#: Event-time order of a task's calls (ties broken by step, then attempt).
_ORDER: Final = attrgetter("ts", "step", "attempt")
_AGENT: Final = attrgetter("agent")
_INPUT: Final = attrgetter("input")
_COMPONENTS: Final = attrgetter("components")
_SYSTEM: Final = itemgetter(0)  # of the components


#: Below these (tokens of any kind; femto-USD per token), the decimal formula of
#: :meth:`Pricer.priced` is exact (every term under 10²⁶ femto-USD, the sum under 10²⁷, so
#: within the 28 digits of the decimal context) and equals the integer femto-USD formula.
_TOKENS_BELOW: Final = 10**12
_RATE_BELOW: Final = 10**14
_FEMTO: Final = 10**15
#: Relative margin: the decimal path rounds twice to 28 significant digits (≤ 1e-27 in all).
_MARGIN: Final = 10**26
_FEMTO_MARGIN: Final = _FEMTO * _MARGIN
_MARGIN_BELOW: Final = _MARGIN - 1  # the bounds' factors, made once
_MARGIN_ABOVE: Final = _MARGIN + 1
#: A column's inputs times the odd part of its scale (:func:`_scale`) at most this: every
#: call's exact-quotient float is the decimal path's (:meth:`Columns._exact_floats`).
_PROVEN_BELOW: Final = 5 * 10**10
#: (entry, its unit: :func:`_unit`), or None: what :class:`InputPrices` keeps per key.
_Rated = tuple[Entry, int]


def _unit(entry: Entry) -> int:
    """The gcd of 10¹⁵ and every femto-USD input rate of ``entry`` (base and tiers): every
    input cost :func:`femto_inputs` gives with it is a multiple of it."""
    unit = _FEMTO
    for group in (entry.femto_rates, *(t.femto_rates for t in entry.tiers)):
        for rate in group[:4]:  # input, cached input, cache write, 1-hour cache write
            unit = gcd(unit, rate)
    return unit


@cache
def _scale(unit: int) -> tuple[int, int]:
    """For a column whose input costs are multiples of ``unit`` (a divisor of 10¹⁵): the
    scale ``c = 10¹⁵ / unit`` (a call's ``femto × n / (input × 10¹⁵)`` is
    ``(femto / unit) × n / (input × c)``), and the largest input for which the proof of
    :meth:`Columns._exact_floats` holds: :data:`_PROVEN_BELOW` over the odd part of ``c``."""
    scale = _FEMTO // unit
    odd = scale
    while not odd % 2:
        odd //= 2
    return scale, _PROVEN_BELOW // odd


class InputPrices:
    """The rates :func:`femto_inputs` prices with, per (provider, model, UTC day, service tier),
    kept across tasks: the pricer's entry and its :func:`_unit` when the integer formula is
    exact for it, else None. A policy reload brings a new pricer, and the engine a new
    ``InputPrices`` with it."""

    __slots__ = ("_rates", "pricer")

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer
        self._rates: dict[tuple[str, str, date, str | None], _Rated | None] = {}

    def exact(self, key: tuple[str, str, date, str | None]) -> _Rated | None:
        try:
            return self._rates[key]
        except KeyError:
            pass
        if len(self._rates) > 10_000:
            self._rates.clear()
        provider, model, day, tier = key
        entry = self.pricer.entry(model, day, provider, tier)
        if entry is not None and (
            not entry.exact
            or any(
                not 0 <= r < _RATE_BELOW
                for group in (entry.femto_rates, *(t.femto_rates for t in entry.tiers))
                for r in group
            )
        ):
            entry = None
        rated = self._rates[key] = None if entry is None else (entry, _unit(entry))
        return rated


def femto_inputs(prices: InputPrices, calls: Sequence[Call]) -> list[int | None]:
    """Every call's input cost in integer femto-USD (its cache discount included; what
    ``input_usd_per_token × input`` is, exactly), or None where only the pricer can say: no
    usage, no price, inexact rates, or counts too large for the integer formula to be the
    decimal one (:data:`_TOKENS_BELOW`)."""
    return _femto_column(prices, calls)[0]


def _femto_column(prices: InputPrices, calls: Sequence[Call]) -> tuple[list[int | None], int, bool]:
    """:func:`femto_inputs`, a unit every input cost (but None) is a multiple of: the gcd
    of the entries' :func:`_unit` (10¹⁵ when there is none), and whether one is None."""
    out: list[int | None] = []
    append = out.append
    rates_of = prices._rates
    unit = _FEMTO
    unknown = False
    # the key of the call before (a task's calls share it, mostly), compared field by field,
    # and what it gave: None (no exact entry), or the entry, its tiers and its base rates
    model = provider = tier = day = _UNSEEN
    entry: Entry | None = None
    tiers: tuple[Any, ...] = ()
    r_in = r_cached = r_write = r_write_1h = 0
    for call in calls:
        input = call.input
        if not input:
            append(0)
            continue
        on = call.ts.date()
        if (
            on != day
            or call.model != model
            or call.provider != provider
            or call.service_tier != tier
        ):
            model, provider, tier, day = call.model, call.provider, call.service_tier, on
            key = (provider, model, on, tier)
            rated = rates_of.get(key, _UNSEEN)
            if rated is _UNSEEN:
                rated = prices.exact(key)
            if rated is None:
                entry = None
            else:
                entry, entry_unit = rated
                if entry_unit != unit:
                    unit = gcd(unit, entry_unit)
                tiers = entry.tiers
                r_in, r_cached, r_write, r_write_1h, _, _ = entry.femto_rates
        cached, write, write_1h = call.cached_input, call.cache_write, call.cache_write_1h
        if (
            entry is None
            or call.usage_missing
            or not (input < _TOKENS_BELOW and cached < _TOKENS_BELOW and write < _TOKENS_BELOW)
            or not write_1h < _TOKENS_BELOW
        ):
            append(None)
            unknown = True
            continue
        if tiers:
            r_in, r_cached, r_write, r_write_1h, _, _ = entry.femto_rates_for(input)
        append(
            (input - cached - write) * r_in
            + cached * r_cached
            + (write - write_1h) * r_write
            + write_1h * r_write_1h
        )
    return out, unit, unknown


def input_rates(pricer: Pricer, calls: Sequence[Call]) -> list[Decimal]:
    """Every call's average input price (USD per input token, its cache discount included):
    exactly ``pricer.priced(call, input_rate=True).input_usd_per_token`` — the same quotient
    (:func:`femto_inputs` × 10⁻¹⁵ / input), divided once in the same decimal context — without
    building a priced call per call; the calls :func:`femto_inputs` cannot price are priced by
    the pricer itself."""
    return _rates(pricer, calls, femto_inputs(InputPrices(pricer), calls))


def _rates(pricer: Pricer, calls: Sequence[Call], femtos: list[int | None]) -> list[Decimal]:
    return [_rate(pricer, call, femto) for call, femto in zip(calls, femtos, strict=True)]


def _rate(pricer: Pricer, call: Call, femto: int | None) -> Decimal:
    """One call's :func:`input_rates`, from its :func:`femto_inputs`."""
    if femto is None:
        return pricer.priced(call, input_rate=True).input_usd_per_token
    if not call.input:
        return _ZERO
    return Decimal(femto) / (call.input * _FEMTO)


class PricedColumns:
    """Calls in event-time order by the columns their input's price reads: ``input`` and
    ``system`` (what the system prompt detector reads, :attr:`TaskBatch.inputs`); of one task or
    of several, task after task, each task's part from ``bounds[k]`` to ``bounds[k + 1]``.
    :class:`Columns` has every column."""

    __slots__ = (
        "_costs",
        "_femtos",
        "_prices",
        "_rates",
        "_unit",
        "_unknown",
        "bounds",
        "calls",
        "input",
        "n",
        "system",
    )

    def __init__(
        self, calls: list[Call], prices: InputPrices, bounds: list[int] | None = None
    ) -> None:
        self._start(calls, prices, bounds)
        self.input = tuple(map(_INPUT, calls))
        self.system = tuple(map(_SYSTEM, map(_COMPONENTS, calls)))

    def _start(self, calls: list[Call], prices: InputPrices, bounds: list[int] | None) -> None:
        self.calls = calls
        self.n = len(calls)
        self.bounds = bounds if bounds is not None else [0, self.n]
        self._prices = prices
        self._rates: list[Decimal] | None = None
        self._femtos: list[int | None] | None = None
        self._unit = 0  # of the femtos (:func:`_femto_column`), once they are made
        self._unknown = False  # a femto is None (:func:`_femto_column`), once they are made
        self._costs: dict[int, Decimal] = {}

    def femtos(self) -> list[int | None]:
        """Every call's input cost in femto-USD (:func:`femto_inputs`), on first use."""
        femtos = self._femtos
        if femtos is None:
            femtos, self._unit, self._unknown = _femto_column(self._prices, self.calls)
            self._femtos = femtos
        return femtos

    def rates(self) -> list[Decimal]:
        """Every call's input price per token (:func:`input_rates`), on first use."""
        rates = self._rates
        if rates is None:
            rates = self._rates = _rates(self._prices.pricer, self.calls, self.femtos())
        return rates

    def input_usd_float_sum(self, tokens: Sequence[int]) -> float:
        """``sum(float(input_usd(i, tokens[i])))`` over the calls in order, the calls with no
        such tokens left out (each adds 0.0): the float the per-call sum gives, bit for bit.
        ``float(rate × n)`` is the correctly rounded float of a decimal that is within 1e-27
        (relative) of the exact ``femto × n / (input × 10¹⁵)``; the exact quotient's float
        is taken where it is proven to be the decimal's (:meth:`_exact_floats`, for the
        whole column at once; else per call, in integers, when every value within 1e-26 of
        it rounds to the same float), and the decimal's otherwise (never, in practice)."""
        return self.input_usd_float_sums(tokens, whole=True)[0]

    def input_usd_float_sums(self, tokens: Sequence[int], *, whole: bool = False) -> list[float]:
        """:meth:`input_usd_float_sum` of each part (:meth:`parts`), in order: each part's
        sum from 0.0, as that task's own columns give it (``whole``: of the whole column)."""
        bounds = (0, self.n) if whole else self.bounds
        floats = self._exact_floats(tokens)
        if floats is None:
            return [self._float_sum(tokens, lo, hi) for lo, hi in pairwise(bounds)]
        # adding a call's 0.0 leaves a sum of non-negative floats as it is; ``reduce`` adds
        # left to right in floats as the loop does (``sum`` of floats compensates from 3.12)
        return [reduce(add, floats[lo:hi], 0.0) for lo, hi in pairwise(bounds)]

    def _exact_floats(self, tokens: Sequence[int]) -> list[float] | None:
        """Every call's ``float(input_usd(i, tokens[i]))``, each the float of its exact
        quotient ``q = femto × n / (input × 10¹⁵)`` (Python's int division rounds it
        correctly), or None where that is not proven for the whole column.

        Proven when every call has an exact femto-USD input cost (:func:`femto_inputs`), a
        multiple of the column's unit ``u`` (the rates' gcd with 10¹⁵, :func:`_unit`), every
        input is at most :data:`_PROVEN_BELOW` over the odd part ``c'`` of ``c = 10¹⁵ / u``
        (:func:`_scale`), and every float is in [0, 1). Proof: ``q = N / (input × c)`` with
        ``N = (femto / u) × n`` an integer; write ``input × c = 2ᵃ × D`` with ``D`` odd, so
        ``D ≤ input × c' ≤ 5×10¹⁰`` and ``a < 36 + 15 = 51``. The decimal path's value ``d``
        is ``q`` rounded twice to 28 significant digits, half-even (the default context, as
        :data:`_MARGIN`): ``|d − q| ≤ η q``, ``η = (1 + 5×10⁻²⁸)² − 1 < 1.0001×10⁻²⁷``. The floats of ``q`` and ``d`` differ only if a
        rounding boundary, a midpoint ``m`` between two adjacent floats, lies between them
        (or on either). Below 1 every such ``m`` is ``K / 2ʲ`` with ``K`` odd, ``j ≥ 54`` and
        ``m < 2⁵⁴⁻ʲ`` (a float below 1 rounds ``q`` and ``d ≤ q(1 + η)`` stays below 1).
        Then ``|q − m| = 2ᵃ |N 2ʲ⁻ᵃ − K D| / (2ᵃ D 2ʲ)``, whose bracket is odd (even minus
        odd: ``j > a``), so ``|q − m| ≥ 1 / (D 2ʲ) > m / (D 2⁵⁴)``; with ``m ≥ q(1 − η)``
        and ``D 2⁵⁴ ≤ 5×10¹⁰ × 2⁵⁴ < 9.01×10²⁶ < (1 − η) / η``, ``|q − m| > η q ≥ |d − q|``:
        no boundary lies between them, and the two floats are equal. (A call with no input
        has no such tokens, ``femto`` 0: its quotient is 0/0, and the column is left to
        :meth:`_float_sum`.) The calls with no exact cost (None) take no part in the proof:
        each of theirs is :meth:`_float_sum`'s, call by call."""
        femtos = self.femtos()
        unit = self._unit
        if not self.n:
            return None
        scale, largest = _scale(unit)
        inputs: Sequence[int] = self.input
        unknown = [i for i, f in enumerate(femtos) if f is None] if self._unknown else None
        if unknown is not None:  # proven for the others: 0 / 1 for now (in range, no division by 0)
            if len(unknown) == self.n:
                return None
            femtos, known = list(femtos), list(inputs)
            for i in unknown:
                femtos[i], known[i] = 0, 1
            inputs = known
        if max(inputs) > largest:
            return None
        try:
            floats = list(
                map(
                    truediv,
                    map(mul, map(floordiv, femtos, repeat(unit)), tokens),
                    map(mul, inputs, repeat(scale)),
                )
            )
        except ZeroDivisionError:
            return None
        if max(floats) >= 1.0 or min(floats) < 0.0:  # (no cost is negative, by contract)
            return None
        if unknown is not None:
            for i in unknown:
                floats[i] = self._float_sum(tokens, i, i + 1)
        return floats

    def _float_sum(self, tokens: Sequence[int], lo: int, hi: int) -> float:
        """The sum from ``lo`` to ``hi``, call by call (a column :meth:`_exact_floats` does
        not prove)."""
        total = 0.0
        femtos = self.femtos()
        inputs = self.input
        for i in range(lo, hi):
            n = tokens[i]
            if not n:
                continue
            femto = femtos[i]
            if femto is not None and inputs[i]:
                scaled = femto * n
                divisor = inputs[i] * _FEMTO_MARGIN
                low = scaled * _MARGIN_BELOW / divisor
                if low == scaled * _MARGIN_ABOVE / divisor:
                    total += low
                    continue
            rates = self._rates  # one call's, unless the column's are made
            rate = (
                rates[i] if rates is not None else _rate(self._prices.pricer, self.calls[i], femto)
            )
            total += float(rate * n)
        return total

    def input_usd(self, index: int, tokens: int) -> Decimal:
        """What ``tokens`` of call ``index``'s input cost."""
        return self.rates()[index] * tokens

    def cost_usd(self, index: int) -> Decimal:
        """The whole cost of call ``index`` (input and output)."""
        cost = self._costs.get(index)
        if cost is None:
            cost = self._costs[index] = self._prices.pricer.priced(self.calls[index]).cost_usd
        return cost

    def tool_names(self) -> set[str]:
        """The tools the calls name (an empty name is none)."""
        return set(filter(None, map(_TOOL_NAME, self.calls)))


class Columns(PricedColumns):
    """Calls of one task (all of them, or one agent's), in event-time order, by column; or of
    several tasks (a :class:`TaskBatch`'s), task after task, each task's part from
    ``bounds[k]`` to ``bounds[k + 1]`` (:meth:`parts`)."""

    __slots__ = (
        "attempt",
        "cached_input",
        "handoff",
        "history",
        "memory",
        "retrieved",
        "tool_calls",
        "tool_definitions",
        "tool_responses",
    )

    def __init__(
        self, calls: list[Call], prices: InputPrices, bounds: list[int] | None = None
    ) -> None:
        self._start(calls, prices, bounds)
        if calls:
            # every row has _ROW's five values, and every call seven components (a Call's, as
            # the decoder and the handover make it): a strict zip would check what cannot differ
            self.input, self.cached_input, self.tool_calls, self.attempt, components = zip(
                *map(_ROW, calls), strict=False
            )
            (
                self.system,
                self.tool_definitions,
                self.retrieved,
                self.history,
                self.tool_responses,
                self.handoff,
                self.memory,
            ) = zip(*components, strict=False)
        else:
            self.input = self.cached_input = self.tool_calls = self.attempt = ()
            self.system = self.tool_definitions = self.retrieved = self.history = ()
            self.tool_responses = self.handoff = self.memory = ()

    def parts(self) -> list[Columns]:
        """Each task's calls (of a batch) on their own, in the batch's order."""
        bounds = self.bounds
        if len(bounds) <= 2:
            return [self]
        return [self.part(lo, hi) for lo, hi in pairwise(bounds)]

    def part(self, lo: int, hi: int) -> Columns:
        """The calls from ``lo`` to ``hi`` (a task's: ``bounds[k]``, ``bounds[k + 1]``)."""
        if lo == 0 and hi == self.n:
            return self
        # the parent's columns sliced: the same values its calls' would give, not read again
        part = Columns.__new__(Columns)
        part._start(self.calls[lo:hi], self._prices, None)
        part.input, part.cached_input = self.input[lo:hi], self.cached_input[lo:hi]
        part.tool_calls, part.attempt = self.tool_calls[lo:hi], self.attempt[lo:hi]
        part.system, part.tool_definitions = self.system[lo:hi], self.tool_definitions[lo:hi]
        part.retrieved, part.history = self.retrieved[lo:hi], self.history[lo:hi]
        part.tool_responses, part.handoff = self.tool_responses[lo:hi], self.handoff[lo:hi]
        part.memory = self.memory[lo:hi]
        return part

    def parts_where(self, column: tuple[int, ...], least: int) -> list[Columns]:
        """The tasks (:meth:`parts`) in which ``column`` reaches ``least``, in order."""
        return [self.part(lo, hi) for lo, hi in self.spans_where(column, least)]

    def spans_where(self, column: tuple[int, ...], least: int) -> list[tuple[int, int]]:
        """Where the tasks of :meth:`parts_where` are: each one's (``bounds[k]``,
        ``bounds[k + 1]``), in order."""
        bounds = self.bounds
        # the calls that reach it (read in C), then the tasks that hold them (bisected)
        found = {bisect_right(bounds, i) for i in compress(count(), map(ge, column, repeat(least)))}
        return [(bounds[k - 1], bounds[k]) for k in sorted(found)]


def in_order(calls: list[Call]) -> list[Call]:
    """A task's calls in event-time order (ties broken by step, then attempt, then arrival)."""
    return sorted(calls, key=_ORDER)


class TaskCalls:
    """One task's calls sorted once, by column (``all``) and by agent (``agents``, in the
    order of their first call; a task with one agent shares ``all``)."""

    __slots__ = ("agents", "all")

    def __init__(self, calls: list[Call], prices: InputPrices) -> None:
        ordered = in_order(calls)
        self.all = Columns(ordered, prices)
        first = ordered[0].agent if ordered else ""
        if all(c.agent == first for c in ordered):
            self.agents = {first: self.all} if ordered else {}
            return
        groups: dict[str, list[Call]] = {}
        for call in ordered:
            group = groups.get(call.agent)
            if group is None:
                groups[call.agent] = [call]
            else:
                group.append(call)
        self.agents = {agent: Columns(group, prices) for agent, group in groups.items()}


class TaskBatch:
    """Closing tasks whose sums go into the same buckets (one team, workflow and bucket
    start), read by column at once: ``all`` (every task's calls, task after task) and
    ``agents`` (per agent, in the order of their first call, that agent's calls of every task
    that has some), each a :class:`Columns` whose :meth:`Columns.parts` are the tasks' own.
    ``tasks``: each task's calls in event-time order (:data:`_ORDER`), none empty."""

    __slots__ = ("_agents", "_all", "_prices", "tasks")

    def __init__(self, tasks: list[list[Call]], prices: InputPrices) -> None:
        self.tasks = tasks
        self._prices = prices
        self._all: Columns | None = None
        self._agents: dict[str, Columns] | None = None

    @property
    def inputs(self) -> PricedColumns:
        """Every task's calls, task after task, by the columns of their input's price only
        (``all``'s if it is made; not kept)."""
        if self._all is not None:
            return self._all
        calls, bounds = self._calls()
        return PricedColumns(calls, self._prices, bounds)

    def _calls(self) -> tuple[list[Call], list[int]]:
        calls: list[Call] = []
        bounds = [0]
        for task in self.tasks:
            calls.extend(task)
            bounds.append(len(calls))
        return calls, bounds

    @property
    def all(self) -> Columns:
        columns = self._all
        if columns is None:
            calls, bounds = self._calls()
            columns = self._all = Columns(calls, self._prices, bounds)
        return columns

    @property
    def agents(self) -> dict[str, Columns]:
        agents = self._agents
        if agents is None:
            groups: dict[str, tuple[list[Call], list[int]]] = {}
            for task in self.tasks:
                first = task[0].agent
                if len(task) == 1 or (
                    task[-1].agent == first and list(map(_AGENT, task)).count(first) == len(task)
                ):
                    held = groups.get(first)
                    if held is None:
                        held = groups[first] = ([], [0])
                    held[0].extend(task)
                    held[1].append(len(held[0]))
                    continue
                # each agent's calls of the task, appended to that agent's (found once a task)
                touched: dict[str, list[Call]] = {}
                for call in task:
                    agent = call.agent
                    calls = touched.get(agent)
                    if calls is None:
                        held = groups.get(agent)
                        if held is None:
                            held = groups[agent] = ([], [0])
                        calls = touched[agent] = held[0]
                    calls.append(call)
                for agent, calls in touched.items():
                    groups[agent][1].append(len(calls))
            prices = self._prices
            agents = self._agents = {
                agent: Columns(calls, prices, bounds) for agent, (calls, bounds) in groups.items()
            }
        return agents

    def task(self, index: int) -> TaskCalls:
        """Task ``index`` on its own."""
        return TaskCalls(self.tasks[index], self._prices)
