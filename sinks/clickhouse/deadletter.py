"""The writer's dead letters: what ClickHouse (or a column) refused, with the reason.

Each is the core record (:mod:`tokengov.deadletter`, stage ``sink``): the item's JSON
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

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tokengov.deadletter import MAX_RAW_BYTES, MAX_REASON_CHARS, RawIs, encode_dead_letter
from tokengov.errors import SinkError
from tokengov.kafka import KafkaConnection, connection

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
        self._producer: Producer | None = None
        self._kafka = connection(kafka)
        self._errors: list[str] = []

    def _client(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    **self._kafka.librdkafka_config(),  # never auto-creates a topic
                    "acks": "all",
                    "linger.ms": 5,
                    "message.timeout.ms": 15000,
                }
            )
        return self._producer

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send_all(self, letters: list[DeadLetter], *, timeout_s: float = 15.0) -> None:
        """Produce ``letters``; raise a retryable :class:`SinkError` unless all were acked."""
        if not letters:
            return
        producer = self._client()
        self._errors.clear()
        for letter in letters:
            log.warning(
                "dead-lettering %s[%d]@%d event_id=%s: %s",
                letter.source_topic,
                letter.source_partition,
                letter.source_offset,
                letter.event_id,
                letter.reason[:MAX_REASON_CHARS],
            )
            self._produce(producer, letter)
        remaining = producer.flush(timeout_s)
        if remaining or self._errors:
            raise SinkError(
                f"dead letters not acknowledged by the broker ({remaining} pending, errors: "
                f"{'; '.join(self._errors[:3]) or 'none'})",
                retryable=True,
            )

    def _produce(self, producer: Producer, letter: DeadLetter) -> None:
        """Produce one letter, waiting for room when the client's queue is full."""
        for _ in range(100):
            try:
                producer.produce(self.topic, letter.value, on_delivery=self._delivered)
                return
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                raise SinkError(f"dead letter not produced: {exc}", retryable=True) from exc
        raise SinkError(
            "dead letters not produced: the producer's queue stays full", retryable=True
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
