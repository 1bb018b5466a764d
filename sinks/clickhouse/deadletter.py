"""The writer's dead letters: what ClickHouse (or a column) refused, with the reason.

A dead letter's value is the item's JSON (the event, alert, decision or
finding); its headers say why and where it came from:
``reason``, ``stage`` (``sink``), ``source_topic``, ``source_partition``,
``source_offset``, and ``event_id`` / ``table`` when known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from tokengov.errors import SinkError
from tokengov.topics import NO_AUTO_CREATE

__all__ = ["DeadLetter", "DeadLetterProducer"]

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

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        headers: list[tuple[str, str | bytes | None]] = [
            ("reason", self.reason.encode()),
            ("stage", b"sink"),
            ("source_topic", self.source_topic.encode()),
            ("source_partition", str(self.source_partition).encode()),
            ("source_offset", str(self.source_offset).encode()),
        ]
        if self.event_id:
            headers.append(("event_id", self.event_id.encode()))
        if self.table:
            headers.append(("table", self.table.encode()))
        return headers


class DeadLetterProducer:
    """Produces dead letters and waits until the broker has every one of them."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer: Producer | None = None
        self._bootstrap = bootstrap
        self._errors: list[str] = []

    def _client(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self._bootstrap,
                    **NO_AUTO_CREATE,
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
                letter.reason,
            )
            producer.produce(
                self.topic, letter.payload, headers=letter.headers(), on_delivery=self._delivered
            )
        remaining = producer.flush(timeout_s)
        if remaining or self._errors:
            raise SinkError(
                f"dead letters not acknowledged by the broker ({remaining} pending, errors: "
                f"{'; '.join(self._errors[:3]) or 'none'})",
                retryable=True,
            )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
