"""Kafka message value → rows for ClickHouse (pure; the pricing catalog is injected).

``tokengov.events`` messages (one event or a batch envelope) are decoded by the
one decoder every consumer uses (:func:`tokengov.core.decoding.decode_events`, with the
limits of the wire: 1 MiB, 64 levels, UTF-8 per item) and priced by the one
pricer (:class:`tokengov.core.pricing.Pricer`: exact Decimal, through integer
femto-USD wherever the catalog's prices allow it). The events the contract
refuses are the streams' dead-letter business, so here they are only counted,
with the same reason. A valid item whose values no column can hold, and an
alert/decision/finding that is not valid (nobody else dead-letters those),
become :class:`Reject` s for the dead-letter topic.

Nothing a message holds can make :meth:`MessageDecoder.decode` raise: a fault in
decoding one (a bug) is caught and dead-letters the message, or the one item
whose row could not be built, naming the fault.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, NamedTuple

import orjson
from pydantic import ValidationError

from tokengov.core.calls import Call, Done, check_call_arg_positions
from tokengov.core.contracts import Alert, Decision, describe_validation_error
from tokengov.core.decoding import decode_call_columns, decode_events
from tokengov.core.message_items import load_items
from tokengov.core.policy import PriceCatalog
from tokengov.core.pricing import CostSource, Pricer
from tokengov.sinks.clickhouse.rows import (
    Finding,
    RowError,
    alert_row,
    call_row,
    checked_cost,
    costs_fit,
    decision_row,
    done_row,
    finding_row,
    row_payload,
)

check_call_arg_positions("the decoders' cost check and rejects", {0: "event_id", 1: "ts"})

__all__ = [
    "Decoded",
    "Item",
    "MessageDecoder",
    "Reject",
    "TopicKind",
]

log = logging.getLogger(__name__)

#: A reason (of a reject or an invalid item) is cut to this many characters.
MAX_REASON_CHARS: Final = 500

TopicKind = Literal["events", "alerts", "decisions", "findings"]

TOKEN_EVENTS: Final = "token_events"  # noqa: S105
TASK_OUTCOMES: Final = "task_outcomes"


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
    """One message's rows (``items``), rejects and invalid items. Decoded with
    ``columns=True`` (:meth:`MessageDecoder.decode`), its calls' rows are not built, nor
    their :class:`~tokengov.core.calls.Call` s: the calls are in ``calls``, as columns in
    :data:`~tokengov.core.calls.CALL_ARGS` order, with what they cost (``amounts``, ``sources``,
    ``versions``: a :data:`~tokengov.core.pricing.Cost` each, checked), and ``items`` holds
    the other rows; the encoder lays them out as columns
    (:func:`~tokengov.sinks.clickhouse.rows.call_columns`)."""

    items: list[Item] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    invalid_events: int = 0  # refused by the contract: counted, dead-lettered by the streams
    tombstones: int = 0
    #: Why each invalid item was refused ("item 3: tokens.input: …"; the whole message: no
    #: prefix), for the writer's log.
    invalid_reasons: list[str] = field(default_factory=list)
    #: The calls' columns, in :data:`~tokengov.core.calls.CALL_ARGS` order (none: no calls).
    calls: list[Sequence[Any]] = field(default_factory=list)
    amounts: list[int | Decimal] = field(default_factory=list)
    sources: list[CostSource] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    def invalid(self, reason: str, index: int | None = None) -> None:
        self.invalid_events += 1
        text = reason if index is None else f"item {index}: {reason}"
        self.invalid_reasons.append(text[:MAX_REASON_CHARS])


def _fault(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return f"the sink could not decode this: {text}"[:MAX_REASON_CHARS]


def _sent_item(value: bytes, index: int | None) -> bytes:
    """The item of a message (its ``index`` in an envelope) as it was sent, for a dead
    letter; the whole message when it cannot be cut out."""
    loaded = load_items(value)
    for at, item in loaded.items:
        if index is None or at == index:
            try:
                return orjson.dumps(item)
            except (TypeError, ValueError):
                return value
    return value


class MessageDecoder:
    """Decodes one message of a topic of kind ``kind``; prices calls with the catalog in force."""

    def __init__(self, catalog: Callable[[], PriceCatalog]) -> None:
        self.catalog = catalog
        self._pricer: Pricer | None = None

    def _pricer_now(self) -> Pricer:
        """The pricer of the catalog in force (a policy reload brings a new catalog)."""
        catalog = self.catalog()
        pricer = self._pricer
        if pricer is None or pricer.catalog is not catalog:
            pricer = self._pricer = Pricer(catalog)
        return pricer

    def decode(self, kind: TopicKind, value: bytes | None, *, columns: bool = False) -> Decoded:
        """One message's rows, rejects and invalid items; never raises for what a message
        holds (a fault decoding it dead-letters what it touched). ``columns``: calls are
        left as calls for the encoder (see :class:`Decoded`)."""
        out = Decoded()
        if value is None:
            out.tombstones = 1
            return out
        try:
            if kind == "events":
                self._events(value, out, columns)
            elif kind == "alerts":
                self._single(value, out, Alert, "alerts", alert_row)
            elif kind == "decisions":
                self._single(value, out, Decision, "decisions", decision_row)
            else:
                self._single(value, out, Finding, "findings", finding_row)
        except Exception as exc:
            log.exception("decoding a %s message failed; dead-lettering it", kind)
            out = Decoded()
            out.rejects.append(Reject(_fault(exc), value, whole=True))
        return out

    def _events(self, value: bytes, out: Decoded, columns: bool) -> None:
        if columns:
            self._call_columns(value, out)
            return
        decoded = decode_events(value)
        for failure, _ in decoded.failures:
            out.invalid(failure.reason, failure.index)
        pricer = self._pricer_now()
        items = out.items
        for index, event in decoded.events:
            try:
                if type(event) is Call:
                    row = call_row(event, pricer.priced(event))
                    items.append(Item(TOKEN_EVENTS, row, event.event_id, event.ts))
                else:
                    assert type(event) is Done
                    items.append(Item(TASK_OUTCOMES, done_row(event), event.event_id, event.ts))
            except Exception as exc:
                self._reject(value, out, decoded.envelope, index, event.event_id, exc)

    @staticmethod
    def _reject(
        value: bytes, out: Decoded, envelope: bool, index: int, event_id: str, exc: Exception
    ) -> None:
        """Item ``index`` of the message cannot be stored (``exc`` says why): a reject."""
        at = index if envelope else None
        reason = str(exc) if isinstance(exc, RowError) else _fault(exc)
        if not isinstance(exc, RowError):
            log.exception("building the row of item %s failed", at)
        out.rejects.append(Reject(reason, _sent_item(value, at), event_id, at))

    def _call_columns(self, value: bytes, out: Decoded) -> None:
        """:meth:`_events` with ``columns``: the calls as columns
        (:func:`~tokengov.core.decoding.decode_call_columns`: no
        :class:`~tokengov.core.calls.Call` built), priced together; the same rejects, in the
        same (item) order."""
        decoded, (at, calls) = decode_call_columns(value)
        for failure, _ in decoded.failures:
            out.invalid(failure.reason, failure.index)
        failed: dict[int, Exception] = {}  # item → why it cannot be stored
        for index, event in decoded.events:  # the outcomes
            assert type(event) is Done
            try:
                row = done_row(event)
            except Exception as exc:
                failed[index] = exc
                continue
            out.items.append(Item(TASK_OUTCOMES, row, event.event_id, event.ts))
        if at:
            pricer = self._pricer_now()
            try:
                amounts, sources, versions = pricer.costs(calls)
            except Exception:  # a fault: which call's (each priced alone)
                amounts, sources, versions = [], [], []
                for index, args in zip(at, zip(*calls, strict=True), strict=True):
                    try:
                        cost = pricer.costs(list(zip(args)))
                    except Exception as exc:
                        failed[index] = exc
                        cost = [0], ["unpriced"], [""]
                    amounts += cost[0]
                    sources += cost[1]
                    versions += cost[2]
            # checked_cost, column-wise for the usual run; one by one when any may fail
            stamps = calls[1]
            if not costs_fit(stamps, amounts):
                for index, ts, amount, source in zip(at, stamps, amounts, sources, strict=True):
                    try:
                        checked_cost(ts, amount, source)
                    except Exception as exc:
                        failed.setdefault(index, exc)
            ids = calls[0]
            if failed:
                keep = [i for i, index in enumerate(at) if index not in failed]
                calls = [[column[i] for i in keep] for column in calls]
                amounts = [amounts[i] for i in keep]
                sources = [sources[i] for i in keep]
                versions = [versions[i] for i in keep]
            out.calls = calls
            out.amounts = amounts
            out.sources = sources
            out.versions = versions
        if failed:
            event_ids = dict(zip(at, ids, strict=True)) if at else {}
            events = dict(decoded.events)
            for index in sorted(failed):
                outcome = events.get(index)
                event_id = outcome.event_id if outcome is not None else event_ids[index]
                self._reject(value, out, decoded.envelope, index, event_id, failed[index])

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
