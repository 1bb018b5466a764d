"""The writer's dead letters: what ClickHouse (or a column) refused, with the reason.

A dead letter's value is the item's JSON (the event, alert, decision or
finding, or the message as received when it could not be decoded); its headers
say why and where it came from: ``reason``, ``stage`` (``sink``),
``source_topic``, ``source_partition``, ``source_offset``, and ``event_id`` /
``table`` when known. A value above :data:`MAX_RAW_BYTES` keeps its first 64 KiB,
with the headers ``raw_bytes`` (the full size) and ``raw_sha256`` (hex SHA-256 of
the full value), so a dead letter never exceeds what the broker takes; a reason is
cut to :data:`MAX_REASON_CHARS` characters.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tokengov.errors import SinkError
from tokengov.topics import NO_AUTO_CREATE

__all__ = ["MAX_RAW_BYTES", "MAX_REASON_CHARS", "DeadLetter", "DeadLetterProducer"]

log = logging.getLogger(__name__)

#: The agreed limit of a dead letter's raw bytes (the rest is summarized by size and hash).
MAX_RAW_BYTES: Final = 65_536
MAX_REASON_CHARS: Final = 1_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    payload: bytes
    source_topic: str
    source_partition: int
    source_offset: int
    event_id: str | None = None
    table: str | None = None

    @property
    def value(self) -> bytes:
        """What is produced: the payload, its first MAX_RAW_BYTES when larger."""
        return self.payload[:MAX_RAW_BYTES]

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        reason = self.reason[:MAX_REASON_CHARS]
        headers: list[tuple[str, str | bytes | None]] = [
            ("reason", reason.encode("utf-8", "replace")),
            ("stage", b"sink"),
            ("source_topic", self.source_topic.encode()),
            ("source_partition", str(self.source_partition).encode()),
            ("source_offset", str(self.source_offset).encode()),
        ]
        if self.event_id:
            headers.append(("event_id", self.event_id.encode("utf-8", "replace")))
        if self.table:
            headers.append(("table", self.table.encode()))
        if len(self.payload) > MAX_RAW_BYTES:
            headers.append(("raw_bytes", str(len(self.payload)).encode()))
            headers.append(("raw_sha256", hashlib.sha256(self.payload).hexdigest().encode()))
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
                producer.produce(
                    self.topic, letter.value, headers=letter.headers(), on_delivery=self._delivered
                )
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
