"""Kafka message value → rows for ClickHouse (pure; the pricing catalog is injected).

``tokengov.events`` messages (one event or a batch envelope) are decoded the
way the streams decode them (:mod:`streams.decode`): each item goes through the
fast path that applies the contract's rules to the parsed dict and, when that
path is not sure, through the contract's pydantic models, which accept it or
refuse it. The events they refuse are the streams' dead-letter business, so here
they are only counted. Calls are priced in exact integer femto-USD
(:class:`ExactPricer`) wherever the catalog's prices allow it, in Decimal
otherwise. A valid item whose values no column can hold, and an
alert/decision/finding that is not valid (nobody else dead-letters those), become
:class:`Reject` s for the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ValidationError

from sinks.clickhouse.rows import (
    MONEY_MAX,
    Finding,
    RowError,
    alert_row,
    call_row,
    decision_row,
    done_row,
    event_row,
    finding_row,
    outcome_row,
    row_payload,
)
from streams.core.events import FEMTO, Call, Done
from streams.core.pricer import Pricer
from streams.decode import fast_event, fast_message
from tokengov.contracts import (
    Alert,
    CallEvent,
    Decision,
    TokenCounts,
    describe_validation_error,
    parse_event,
)
from tokengov.errors import ContractError
from tokengov.policy import PriceCatalog
from tokengov.pricing import ZERO, cost_of_tokens, price_call

__all__ = ["Decoded", "ExactPricer", "Item", "MessageDecoder", "Reject", "TopicKind"]

TopicKind = Literal["events", "alerts", "decisions", "findings"]

TOKEN_EVENTS: Final = "token_events"  # noqa: S105


class Item(NamedTuple):
    """One row bound for ``table``. ``event_id`` and ``ts`` are set for rows deduplicated by
    event id. ``raw`` is the message value of a one-object message (alerts, decisions,
    findings); an event's dead letter is rebuilt from its row instead, so that no parsed
    model outlives decoding (a batch holds tens of thousands of rows). A named tuple: one
    is made per row, at a third of a frozen dataclass's cost."""

    table: str
    row: tuple[Any, ...]
    event_id: str | None = None
    ts: datetime | None = None
    raw: bytes | None = None

    def payload(self) -> bytes:
        """What a dead letter of this row carries: the contract JSON of the item."""
        return self.raw if self.raw is not None else row_payload(self.table, self.row)


@dataclass(frozen=True, slots=True)
class Reject:
    """Something that cannot be stored, with why; the writer dead-letters it."""

    reason: str
    payload: bytes
    event_id: str | None = None
    index: int | None = None


@dataclass(slots=True)
class Decoded:
    items: list[Item] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    invalid_events: int = 0  # refused by the contract: counted, dead-lettered by the streams
    tombstones: int = 0


def _fast_item(event: Call | Done, pricer: ExactPricer, out: Decoded) -> RowError | None:
    """Append the row of an event a fast path accepted, or say which value no column holds."""
    try:
        if isinstance(event, Call):
            cost, source = pricer.price(event)
            row = call_row(event, cost, source)
            out.items.append(Item(TOKEN_EVENTS, row, event.event_id, event.ts))
        else:
            out.items.append(Item("task_outcomes", done_row(event), event.event_id, event.ts))
    except RowError as exc:
        return exc
    return None


def _fast_reject(error: RowError, item: Any, event: Call | Done, index: int | None) -> Reject:
    """The item as it was sent goes to the dead letter, with why."""
    return Reject(str(error), orjson.dumps(item), event.event_id, index)


def _item_of(value: bytes, index: int | None) -> Any:
    """The item of a message (its ``index`` in an envelope), as it was sent."""
    doc = orjson.loads(value)
    return doc if index is None else doc[index]


def _model_payload(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


_MONEY_MAX_FEMTO: Final = int(MONEY_MAX) * FEMTO


class ExactPricer:
    """The cost of a fast-decoded call, equal to :func:`tokengov.pricing.price_call`'s.

    Integer femto-USD arithmetic (:class:`streams.core.pricer.Pricer`) where the catalog
    entry in force allows it exactly, :func:`tokengov.pricing.cost_of_tokens` otherwise.
    """

    def __init__(self, catalog: PriceCatalog) -> None:
        self.catalog = catalog
        self._integer = Pricer(catalog)

    def price(self, call: Call) -> tuple[Decimal, str]:
        """(cost in USD, cost source); raises :class:`RowError` for a cost no column holds."""
        entry = self._integer.entry(call.model, call.ts.date())
        if entry is None:
            return ZERO, "unpriced"
        if entry.exact:
            femto = self._integer.price(call)
            assert femto is not None  # priced: the entry above
            if femto >= _MONEY_MAX_FEMTO:
                raise RowError("cost_usd", f"{femto / FEMTO:.0f} does not fit Decimal(38, 12)")
            return Decimal(femto).scaleb(-15), "catalog"
        tokens = TokenCounts.model_construct(
            input=call.input,
            output=call.output,
            cached_input=call.cached_input,
            cache_write=call.cache_write,
            reasoning=call.reasoning,
        )
        cost = cost_of_tokens(tokens, entry.price)
        if cost >= MONEY_MAX:
            raise RowError("cost_usd", f"{cost} does not fit Decimal(38, 12)")
        return cost, "catalog"


class MessageDecoder:
    """Decodes one message of a topic of kind ``kind``; prices calls with the catalog in force."""

    def __init__(self, catalog: Callable[[], PriceCatalog]) -> None:
        self.catalog = catalog
        self._pricer: ExactPricer | None = None

    def _pricer_now(self) -> ExactPricer:
        """The pricer of the catalog in force (a policy reload brings a new catalog)."""
        catalog = self.catalog()
        pricer = self._pricer
        if pricer is None or pricer.catalog is not catalog:
            pricer = self._pricer = ExactPricer(catalog)
        return pricer

    def decode(self, kind: TopicKind, value: bytes | None) -> Decoded:
        out = Decoded()
        if value is None:
            out.tombstones = 1
            return out
        if kind == "events":
            self._events(value, out)
        elif kind == "alerts":
            self._single(value, out, Alert, "alerts", alert_row)
        elif kind == "decisions":
            self._single(value, out, Decision, "decisions", decision_row)
        else:
            self._single(value, out, Finding, "findings", finding_row)
        return out

    def _events(self, value: bytes, out: Decoded) -> None:
        pricer = self._pricer_now()
        fast = fast_message(value)
        if fast is not None:
            envelope, events = fast
            for index, event in enumerate(events):
                if (error := _fast_item(event, pricer, out)) is not None:
                    at = index if envelope else None
                    out.rejects.append(_fast_reject(error, _item_of(value, at), event, at))
            return
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            out.invalid_events = 1
            return
        envelope = type(doc) is list
        items: list[Any] = doc if envelope else [doc]
        for index, item in enumerate(items):
            at = index if envelope else None
            fast_one = fast_event(item)
            if fast_one is None:
                self._model_event(item, pricer.catalog, out, at)
            elif (error := _fast_item(fast_one, pricer, out)) is not None:
                out.rejects.append(_fast_reject(error, item, fast_one, at))

    @staticmethod
    def _model_event(item: Any, catalog: PriceCatalog, out: Decoded, index: int | None) -> None:
        """An item the fast path was not sure about: the contract's models decide."""
        try:
            event = parse_event(item)
        except ContractError:
            out.invalid_events += 1
            return
        try:
            if isinstance(event, CallEvent):
                row = event_row(event, price_call(event, catalog))
                out.items.append(Item(TOKEN_EVENTS, row, event.event_id, event.ts))
            else:
                out.items.append(
                    Item("task_outcomes", outcome_row(event), event.event_id, event.ts)
                )
        except RowError as exc:
            out.rejects.append(Reject(str(exc), _model_payload(event), event.event_id, index))

    @staticmethod
    def _single(
        value: bytes,
        out: Decoded,
        model: type[Alert] | type[Decision] | type[Finding],
        table: str,
        to_row: Callable[[Any], tuple[Any, ...]],
    ) -> None:
        try:
            obj = model.model_validate_json(value)
        except ValidationError as exc:
            reason = f"not a valid {model.__name__}: {describe_validation_error(exc)}"
            out.rejects.append(Reject(reason, value))
            return
        try:
            out.items.append(Item(table, to_row(obj), raw=value))
        except RowError as exc:
            out.rejects.append(Reject(str(exc), value))
