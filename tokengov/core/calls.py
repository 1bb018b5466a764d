"""A decoded event, as every consumer of ``tokengov.events`` works with it.

The wire contract is :mod:`tokengov.core.contracts` (pydantic models, the JSON Schema
source); :class:`Call` (a model call) and :class:`Done` (how a task ended: an
``Outcome``) are its internal form — flat msgspec structs, not tracked by the cyclic
GC, already validated — the one that :mod:`tokengov.core.decoding` produces for the
streams, the token-debt role, the ClickHouse writer and the CLI. It is built either from
a validated model (:func:`from_model`) or by the decoder's fast path, which applies the
same rules without building models.

Money is kept in integer femto-USD (1e-15 USD): exact for every price with up to
nine decimals per million tokens and every reported ``cost_usd`` (at most twelve
decimals), and much cheaper than Decimal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import msgspec

from tokengov.core.contracts import COMPONENT_NAMES, CallEvent, Outcome

__all__ = [
    "CALL_ARGS",
    "COMPONENT_NAMES",
    "FEMTO",
    "NO_COMPONENTS",
    "Call",
    "CallArgs",
    "Done",
    "Event",
    "call_args",
    "check_call_arg_positions",
    "epoch_ms",
    "from_model",
    "to_femto",
    "usd",
    "usd_str",
]

FEMTO: Final = 10**15
NO_COMPONENTS: Final = (0, 0, 0, 0, 0, 0, 0)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_replace: Final = msgspec.structs.replace


def epoch_ms(ts: datetime) -> int:
    """Milliseconds since the epoch, floored (exact: no float) — what a ``DateTime64(3)``
    column keeps, and every call's and outcome's ``ts_ms``. The parts of the timedelta, not
    ``// timedelta(milliseconds=1)``: the same integer (a timedelta's seconds and
    microseconds are never negative), a third cheaper."""
    d = ts - _EPOCH
    return d.days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000


def to_femto(value: Decimal) -> int:
    """USD as an integer number of femto-USD (rounded half-even beyond 15 decimals)."""
    return int((value * FEMTO).to_integral_value())


def usd_str(femto: int) -> str:
    """Exact plain decimal text of a femto-USD amount: ``0.00072``, ``12``, ``-0.5``."""
    sign = "-" if femto < 0 else ""
    whole, frac = divmod(abs(femto), FEMTO)
    text = f"{whole}.{frac:015d}".rstrip("0").rstrip(".")
    return sign + text


def usd(femto: int) -> Decimal:
    return Decimal(usd_str(femto))


class Call(msgspec.Struct, gc=False):
    """One model call (the contract's :class:`~tokengov.core.contracts.CallEvent`): token counts
    flat (``input``, ``output``, ``cached_input``, ``cache_write`` with its 1-hour part
    ``cache_write_1h``, ``reasoning``), ``service_tier`` (None: not reported),
    ``usage_missing`` (the response carried no usage: never priced as a normal call), the
    input's ``components`` as a tuple in :data:`COMPONENT_NAMES` order (also readable by
    name: ``call.history``), a reported cost in femto-USD (``cost_femto``, None: price it
    from the catalog), ``task_id`` never None, ``ts_ms`` (:func:`epoch_ms` of ``ts``).

    A ``msgspec.Struct`` without GC tracking (its fields are text, numbers, a time and a
    tuple of integers: it can hold no cycle), its fields set in C (~0.12 µs, against ~0.35
    for a slotted class's 27 stores in Python; ``ts_ms``'s arithmetic, ~0.2 µs, is still
    Python's). Built as the class was, ``Call(*args)`` with :data:`CALL_ARGS` (or by name);
    ``ts_ms`` is worked out from ``ts`` in ``__post_init__``, whatever is passed for it.
    As before: unhashable; equal to another call whose fields are equal and whose ``ts`` has
    the same UTC offset; ``__slots__`` the field names, sorted."""

    event_id: str
    ts: datetime
    team: str
    workflow: str
    task_id: str
    agent: str
    parent_agent: str | None
    step: int
    model: str
    input: int
    output: int
    cached_input: int
    cache_write: int
    reasoning: int
    components: tuple[int, int, int, int, int, int, int]
    attempt: int
    tool_calls: int
    tool_name: str | None
    status: str
    cost_femto: int | None
    context_window: int | None
    provider: str = "unknown"
    latency_ms: int | None = None
    cache_write_1h: int = 0
    service_tier: str | None = None
    usage_missing: bool = False
    ts_ms: int = 0  # set by __post_init__ (not one of CALL_ARGS)
    kind: ClassVar[Literal["call"]] = "call"
    if TYPE_CHECKING:  # msgspec's, as a slotted class has them: the fields, sorted
        __slots__: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        d = self.ts - _EPOCH  # epoch_ms, inlined (once per event)
        self.ts_ms = d.days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000

    @property
    def tokens_total(self) -> int:
        """Input plus output tokens."""
        return self.input + self.output

    # The input's components by name (DESIGN.md), in tokens.
    @property
    def system(self) -> int:
        return self.components[0]

    @property
    def tool_definitions(self) -> int:
        return self.components[1]

    @property
    def retrieved(self) -> int:
        return self.components[2]

    @property
    def history(self) -> int:
        return self.components[3]

    @property
    def tool_responses(self) -> int:
        return self.components[4]

    @property
    def handoff(self) -> int:
        return self.components[5]

    @property
    def memory(self) -> int:
        return self.components[6]

    def at(self, ts: datetime) -> Call:
        """The same call stamped ``ts`` (clock skew: governed at processing time)."""
        return _replace(self, ts=ts)  # (__post_init__ works out ts_ms)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Call
            and all(getattr(self, f) == getattr(other, f) for f in Call.__struct_fields__)
            and self.ts.utcoffset() == other.ts.utcoffset()
        )


class Done(msgspec.Struct, gc=False):
    """How a task ended (the contract's :class:`~tokengov.core.contracts.Outcome`); a
    ``msgspec.Struct`` as :class:`Call` is, ``ts_ms`` worked out from ``ts``."""

    event_id: str
    ts: datetime
    team: str
    workflow: str
    task_id: str
    status: str
    quality: float | None
    ts_ms: int = 0  # set by __post_init__
    kind: ClassVar[Literal["outcome"]] = "outcome"

    def __post_init__(self) -> None:
        d = self.ts - _EPOCH  # epoch_ms, inlined (once per event)
        self.ts_ms = d.days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000

    def at(self, ts: datetime) -> Done:
        """The same outcome stamped ``ts`` (clock skew: governed at processing time)."""
        return _replace(self, ts=ts)

    def met_quality_bar(self, quality_bar: float | None) -> bool:
        """Success and (when a bar is set) ``quality`` at or above it — as ``Outcome`` says."""
        if self.status != "success":
            return False
        if quality_bar is None:
            return True
        return self.quality is not None and self.quality >= quality_bar

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Done
            and all(getattr(self, f) == getattr(other, f) for f in Done.__struct_fields__)
            and self.ts.utcoffset() == other.ts.utcoffset()
        )


Event = Call | Done

#: :class:`Call`'s constructor arguments, in order (``ts_ms`` is worked out from ``ts``):
#: read from its fields, so that there is one list of them.
CALL_ARGS: Final = tuple(name for name in Call.__struct_fields__ if name != "ts_ms")
#: A call as the tuple of its constructor's arguments (:data:`CALL_ARGS` order): what the
#: decoder hands a consumer that lays calls out as columns (the ClickHouse sink) instead of
#: building a :class:`Call` (~1 µs each); ``Call(*args)`` is the call.
CallArgs = tuple[Any, ...]
#: A :class:`Call`'s :data:`CallArgs`.
call_args: Final = attrgetter(*CALL_ARGS)


def check_call_arg_positions(reader: str, positions: dict[int, str]) -> None:
    """For a hot loop that reads :data:`CallArgs` by position (an index is cheaper than a
    name): fail at import, naming ``reader``, if :data:`CALL_ARGS` no longer has those names
    at those positions."""
    wrong = {i: name for i, name in positions.items() if CALL_ARGS[i] != name}
    if wrong:
        raise ImportError(f"{reader} reads CallArgs by position, and CALL_ARGS moved {wrong}")


def from_model(event: CallEvent | Outcome) -> Call | Done:
    """The hot-path form of a validated contract model."""
    if isinstance(event, Outcome):
        return Done(
            event.event_id,
            event.ts,
            event.team,
            event.workflow,
            event.task_id,
            event.status,
            event.quality,
        )
    t, c = event.tokens, event.components
    comps = (
        c.system,
        c.tool_definitions,
        c.retrieved,
        c.history,
        c.tool_responses,
        c.handoff,
        c.memory,
    )
    return Call(
        event.event_id,
        event.ts,
        event.team,
        event.workflow,
        event.task,
        event.agent,
        event.parent_agent,
        event.step,
        event.model,
        t.input,
        t.output,
        t.cached_input,
        t.cache_write,
        t.reasoning,
        comps,
        event.attempt,
        event.tool_calls,
        event.tool_name,
        event.status,
        None if event.cost_usd is None else to_femto(event.cost_usd),
        event.context_window,
        event.provider,
        event.latency_ms,
        t.cache_write_1h,
        event.service_tier,
        event.usage_missing,
    )
