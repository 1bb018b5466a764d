"""The writer's dead letters: what ClickHouse (or a column) refused, with the reason.

Each is the core record (:mod:`tokengov.core.deadletter`, stage ``sink``): the item's JSON
(the event's contract JSON rebuilt from its row, ``raw_is: item``; or the alert,
decision or finding message as received, ``raw_is: message``), the reason, the source
topic/partition/offset, ``event_id`` when known and the ``table`` in ``details``. The
raw is cut at 64 KiB (with its full size and SHA-256), so a dead letter never exceeds
what the broker takes. The writer does not keep message keys: the record's key is null
(``tokengov deadletter replay`` then sends it back to its source partition).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tokengov.core.deadletter import MAX_RAW_BYTES, MAX_REASON_CHARS, RawIs, encode_dead_letter
from tokengov.core.errors import BrokerError, SinkError
from tokengov.core.kafka import CheckedProducer, KafkaConnection, connection

__all__ = ["MAX_RAW_BYTES", "MAX_REASON_CHARS", "DeadLetter", "DeadLetterProducer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    payload: bytes
    source_topic: str
    source_partition: int
    source_offset: int
    event_id: str | None = None
    table: str | None = None
    raw_is: RawIs = "item"
    index: int | None = None

    @property
    def value(self) -> bytes:
        """What is produced: the dead-letter record (the payload cut at MAX_RAW_BYTES)."""
        return encode_dead_letter(
            reason=self.reason,
            stage="sink",
            raw=self.payload,
            raw_is=self.raw_is,
            source_topic=self.source_topic,
            source_partition=self.source_partition,
            source_offset=self.source_offset,
            index=self.index,
            event_id=self.event_id,
            details={"table": self.table} if self.table else None,
        )


class DeadLetterProducer:
    """Produces dead letters and waits until the broker has every one of them."""

    def __init__(self, kafka: KafkaConnection | str, topic: str) -> None:
        self.topic = topic
        self._producer: CheckedProducer | None = None
        self._kafka = connection(kafka)

    def send_all(self, letters: list[DeadLetter], *, timeout_s: float = 15.0) -> None:
        """Produce ``letters``; raise a retryable :class:`SinkError` unless all were acked."""
        if not letters:
            return
        if self._producer is None:
            self._producer = CheckedProducer(self._kafka, options={"message.timeout.ms": 15000})
        try:
            for letter in letters:
                log.warning(
                    "dead-lettering %s[%d]@%d event_id=%s: %s",
                    letter.source_topic,
                    letter.source_partition,
                    letter.source_offset,
                    letter.event_id,
                    letter.reason[:MAX_REASON_CHARS],
                )
                self._producer.publish(self.topic, letter.value)
            self._producer.deliver(timeout_s, what="dead letters")
        except BrokerError as exc:
            raise SinkError(str(exc), retryable=True) from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
