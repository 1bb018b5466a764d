"""Kafka message value → rows for ClickHouse (pure; the pricing catalog is injected).

``tokengov.events`` messages (one event or a batch envelope) are decoded with
:func:`tokengov.contracts.decode_message`; the events it refuses are the
streams' dead-letter business, so here they are only counted. A valid item
whose values no column can hold, and an alert/decision/finding that is not
valid (nobody else dead-letters those), become :class:`Reject` s for the
dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ValidationError

from sinks.clickhouse.rows import (
    Finding,
    RowError,
    alert_row,
    decision_row,
    event_row,
    finding_row,
    outcome_row,
    row_payload,
)
from tokengov.contracts import (
    Alert,
    CallEvent,
    Decision,
    decode_message,
    describe_validation_error,
)
from tokengov.policy import PriceCatalog
from tokengov.pricing import price_call

__all__ = ["Decoded", "Item", "MessageDecoder", "Reject", "TopicKind"]

TopicKind = Literal["events", "alerts", "decisions", "findings"]

TOKEN_EVENTS: Final = "token_events"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Item:
    """One row bound for ``table``. ``event_id`` and ``ts`` are set for rows deduplicated by
    event id. ``raw`` is the message value of a one-object message (alerts, decisions,
    findings); an event's dead letter is rebuilt from its row instead, so that no parsed
    model outlives decoding (a batch holds tens of thousands of rows)."""

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


def _model_payload(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


class MessageDecoder:
    """Decodes one message of a topic of kind ``kind``; prices calls with the catalog in force."""

    def __init__(self, catalog: Callable[[], PriceCatalog]) -> None:
        self._catalog = catalog

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
        result = decode_message(value)
        out.invalid_events = len(result.failures)
        catalog = self._catalog()
        for index, event in enumerate(result.events):
            try:
                if isinstance(event, CallEvent):
                    row = event_row(event, price_call(event, catalog))
                    out.items.append(Item(TOKEN_EVENTS, row, event.event_id, event.ts))
                else:
                    out.items.append(
                        Item("task_outcomes", outcome_row(event), event.event_id, event.ts)
                    )
            except RowError as exc:
                out.rejects.append(
                    Reject(
                        str(exc),
                        _model_payload(event),
                        event.event_id,
                        index if result.envelope else None,
                    )
                )

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
