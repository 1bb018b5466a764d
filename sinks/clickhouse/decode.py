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

The limits every layer agrees on (docs/streams.md) are applied here too, so that
the store holds exactly what the streams govern: a message above
:data:`MAX_MESSAGE_BYTES` or nested deeper than :data:`MAX_DEPTH` is invalid as a
whole; an item of an envelope with invalid UTF-8 is invalid while the envelope's
other items go through. Nothing a message holds can make :meth:`MessageDecoder.decode`
raise: a fault in decoding one (a bug, a limit of a parser) is caught, the
message's items are decoded one by one, and each item that still fails becomes a
:class:`Reject` naming the fault.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
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
from streams.core.events import FEMTO, NO_COMPONENTS, Call, Done
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

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "Decoded",
    "ExactPricer",
    "Item",
    "MessageDecoder",
    "Reject",
    "TopicKind",
    "nesting_exceeds",
]

log = logging.getLogger(__name__)

#: The agreed limits (docs/streams.md): a message on tokengov.events, and its JSON nesting.
MAX_MESSAGE_BYTES: Final = 1_048_576
MAX_DEPTH: Final = 64
#: A reason (of a reject or an invalid item) is cut to this many characters.
MAX_REASON_CHARS: Final = 500

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
    #: True: ``payload`` is the message value as received; False: the item re-encoded.
    whole: bool = False


@dataclass(slots=True)
class Decoded:
    items: list[Item] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    invalid_events: int = 0  # refused by the contract: counted, dead-lettered by the streams
    tombstones: int = 0
    #: Why each invalid item was refused ("item 3: tokens.input: …"; the whole message: no
    #: prefix), for the writer's log.
    invalid_reasons: list[str] = field(default_factory=list)

    def invalid(self, reason: str, index: int | None = None) -> None:
        self.invalid_events += 1
        text = reason if index is None else f"item {index}: {reason}"
        self.invalid_reasons.append(text[:MAX_REASON_CHARS])


# Depth of JSON without parsing it (C-speed bytes operations): drop the escapes (a backslash
# only ever starts one, inside a string), keep brackets and quotes, drop the strings (their
# quotes now pair up), then strip the innermost pairs once per level.
_KEEP: Final = b'[]{}"'
_DROP: Final = bytes(b for b in range(256) if b not in _KEEP)
_STRING: Final = re.compile(rb'"[^"]*"')
_PAIR: Final = re.compile(rb"\{\}|\[\]")


def nesting_exceeds(value: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``value`` nests arrays/objects deeper than ``limit`` levels (a
    message that is not JSON at all may give either answer: the parser refuses it)."""
    if b"\\" in value:
        value = value.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = value.translate(None, _DROP).replace(b'""', b"")
    if b'"' in shape:
        shape = _STRING.sub(b"", shape)
    for _ in range(limit):
        inner = _PAIR.sub(b"", shape)  # one level: {}[] pairs of the string as it is
        if inner == shape or not inner:
            return False
        shape = inner
    return True


def _spare_containers(value: bytes, envelope: bool, events: list[Call | Done]) -> int:
    """An upper bound on the arrays/objects of a message that the contract's fields do not
    account for (unknown fields, or brackets inside strings). Every event the strict fast
    path accepted is itself an object with at most ``tokens`` and ``components`` objects
    inside: when the rest is at most MAX_DEPTH - 2 containers, the message cannot nest
    deeper than MAX_DEPTH, and the exact check (~1 µs per event) is not needed. Two byte
    counts, ~0.3 µs per event."""
    known = 1 if envelope else 0
    for event in events:
        known += 1
        if type(event) is Call:
            # Counted only when they are certainly there: an absent object is all zeros.
            if event.input or event.output:
                known += 1
            if event.components != NO_COMPONENTS:
                known += 1
    return value.count(b"{") + value.count(b"[") - known


def _has_surrogates(value: Any) -> Iterator[str]:
    """Paths of the strings of a JSON value decoded with ``surrogateescape`` that held
    invalid UTF-8."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                yield path or "(value)"
        elif isinstance(node, dict):
            for key, item in node.items():
                name = f"{path}.{key}" if path else str(key)
                if _SURROGATE.search(key):
                    yield f"{path or '(object)'} (a key)"
                stack.append((name, item))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(node))


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _depth(value: Any) -> int:
    """Levels of arrays/objects in a parsed JSON value (a scalar: 0)."""
    deepest = 0
    stack: list[tuple[int, Any]] = [(0, value)]
    while stack:
        level, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((level + 1, v) for v in node.values())
        elif isinstance(node, list):
            stack.extend((level + 1, v) for v in node)
        else:
            continue
        deepest = max(deepest, level + 1)
    return deepest


def _fault(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return f"the sink could not decode this: {text}"[:MAX_REASON_CHARS]


def _dumps(item: Any, fallback: bytes) -> bytes:
    """An item as JSON for a dead letter; the message as received if it cannot be."""
    try:
        return orjson.dumps(item)
    except (TypeError, ValueError, RecursionError):
        return fallback


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
        """One message's rows, rejects and invalid items; never raises for what a message
        holds (a fault decoding it dead-letters what it touched)."""
        out = Decoded()
        if value is None:
            out.tombstones = 1
            return out
        try:
            if kind == "events":
                self._events(value, out)
            elif kind == "alerts":
                self._single(value, out, Alert, "alerts", alert_row)
            elif kind == "decisions":
                self._single(value, out, Decision, "decisions", decision_row)
            else:
                self._single(value, out, Finding, "findings", finding_row)
        except Exception as exc:
            log.exception("decoding a %s message failed; decoding it item by item", kind)
            out = Decoded()
            if kind == "events":
                self._salvage(value, out, exc)
            else:
                out.rejects.append(Reject(_fault(exc), value, whole=True))
        return out

    def _salvage(self, value: bytes, out: Decoded, fault: Exception | None) -> None:
        """Each item on its own: one with invalid UTF-8 is invalid (the contract's rule),
        one whose decoding fails (``fault``: what failed for the whole message) is rejected
        with why; the others go through."""
        try:
            doc = json.loads(value.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError) as exc:
            if fault is None:
                out.invalid(f"not JSON: {exc}")
            else:
                out.rejects.append(Reject(_fault(fault), value, whole=True))
            return
        envelope = type(doc) is list
        self._one_by_one(doc if envelope else [doc], envelope, value, out)

    def _deep(self, value: bytes, out: Decoded) -> None:
        """A message nested deeper than MAX_DEPTH: in an envelope, the items within the limit
        (each event's object is level 1, the envelope's array not counted: the contract's
        ``MAX_JSON_DEPTH``) go through; otherwise the whole message is invalid."""
        try:
            doc = json.loads(value.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError):
            doc = None
        if type(doc) is not list:
            out.invalid(f"JSON nested deeper than {MAX_DEPTH} levels")
            return
        self._one_by_one(doc, True, value, out, depth=MAX_DEPTH)

    def _one_by_one(
        self,
        items: list[Any],
        envelope: bool,
        value: bytes,
        out: Decoded,
        *,
        depth: int | None = None,
    ) -> None:
        for index, item in enumerate(items):
            at = index if envelope else None
            bad = next(_has_surrogates(item), None)
            if bad is not None:
                out.invalid(f"{bad}: invalid UTF-8", at)
                continue
            if depth is not None and _depth(item) > depth:
                out.invalid(f"JSON nested deeper than {MAX_DEPTH} levels", at)
                continue
            before = (len(out.items), len(out.rejects), out.invalid_events)
            try:
                self._item(item, self._pricer_now(), out, at)
            except Exception as exc:
                log.exception("decoding item %s failed", at)
                del out.items[before[0] :]
                del out.rejects[before[1] :]
                del out.invalid_reasons[before[2] :]
                out.invalid_events = before[2]
                event_id = item.get("event_id") if isinstance(item, dict) else None
                out.rejects.append(
                    Reject(
                        _fault(exc),
                        _dumps(item, value),
                        event_id if isinstance(event_id, str) else None,
                        at,
                    )
                )

    def _item(self, item: Any, pricer: ExactPricer, out: Decoded, at: int | None) -> None:
        fast_one = fast_event(item)
        if fast_one is None:
            self._model_event(item, pricer.catalog, out, at)
        elif (error := _fast_item(fast_one, pricer, out)) is not None:
            out.rejects.append(_fast_reject(error, item, fast_one, at))

    def _events(self, value: bytes, out: Decoded) -> None:
        if len(value) > MAX_MESSAGE_BYTES:
            out.invalid(f"message of {len(value)} bytes exceeds {MAX_MESSAGE_BYTES} bytes (1 MiB)")
            return
        try:
            # msgspec skips unknown fields without looking at their UTF-8: check it all here
            # (C speed, ~0.05 µs per event of an envelope).
            value.decode("utf-8")
        except UnicodeDecodeError:
            if nesting_exceeds(value):
                self._deep(value, out)
            else:
                self._salvage(value, out, None)
            return
        pricer = self._pricer_now()
        try:
            fast = fast_message(value)
        except RecursionError:  # msgspec skipping an unknown field ~1,000 levels deep
            fast = None
        if fast is not None and _spare_containers(value, *fast) > MAX_DEPTH - 2:
            fast = None  # maybe nested too deep in an unknown field: look closer below
        if fast is None and nesting_exceeds(value):
            self._deep(value, out)
            return
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
            # Invalid UTF-8 in some item, an integer beyond 64 bits, or not JSON: Python's
            # parser takes the first two, item by item; the contract's rules then decide.
            self._salvage(value, out, None)
            return
        envelope = type(doc) is list
        items: list[Any] = doc if envelope else [doc]
        for index, item in enumerate(items):
            self._item(item, pricer, out, index if envelope else None)

    @staticmethod
    def _model_event(item: Any, catalog: PriceCatalog, out: Decoded, index: int | None) -> None:
        """An item the fast path was not sure about: the contract's models decide."""
        try:
            event = parse_event(item)
        except ContractError as exc:
            out.invalid(str(exc), index)
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
            out.rejects.append(Reject(reason, value, whole=True))
            return
        try:
            out.items.append(Item(table, to_row(obj), raw=value))
        except RowError as exc:
            out.rejects.append(Reject(str(exc), value, whole=True))
