"""Thin Kafka adapters for the router (confluent-kafka): a producer for dead letters
and ``receiver_failing`` alerts, and the ``tokengov.silences`` topic
(publish, read it whole, follow it).

Dead letters from the router are the core record (:mod:`tokengov.deadletter`, stage
``router``): an alert message that could not be taken (``raw_is: message``, with its
source topic/partition/offset and key), or the JSON payload of a notification that could
not be delivered (``raw_is: notification``; ``receiver``, ``notification_id`` and
``attempts`` in ``details``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from sinks.router.silences import Silence
from tokengov.contracts import Alert
from tokengov.deadletter import encode_dead_letter
from tokengov.errors import BrokerError
from tokengov.kafka import KafkaConnection, connection
from tokengov.topics import NO_AUTO_CREATE

__all__ = [
    "KafkaAlertSink",
    "KafkaDeadLetters",
    "KafkaPublisher",
    "SilenceTopic",
    "router_dead_letter",
]

log = logging.getLogger(__name__)
#: librdkafka's own log (syslog levels): connection retries are routine, our callers
#: report what failed; keep only critical messages out of the terminal.
_LIBRDKAFKA_LOG_LEVEL = 2


class KafkaPublisher:
    """A lazy-flushing producer; failures to deliver are logged with topic and key."""

    def __init__(
        self, bootstrap: KafkaConnection | str, *, client_id: str = "tokengov-router"
    ) -> None:
        self.kafka = connection(bootstrap)
        self.bootstrap = self.kafka.bootstrap
        self._producer = Producer(
            {
                **connection(bootstrap).librdkafka_config(),
                "client.id": client_id,
                **NO_AUTO_CREATE,
                "linger.ms": 5,
                "acks": "all",
                "partitioner": "murmur2_random",
                "log_level": _LIBRDKAFKA_LOG_LEVEL,
            }
        )
        self.failed = 0

    def _on_delivery(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            self.failed += 1
            topic = getattr(msg, "topic", lambda: "?")()
            key = getattr(msg, "key", lambda: None)()
            log.error("could not publish to %s (key %r): %s", topic, key, err)

    def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        def produce() -> None:
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=list((headers or {}).items()),
                on_delivery=self._on_delivery,
            )

        try:
            produce()
        except BufferError:  # the local queue is full: serve delivery reports, try once more
            self._producer.poll(0.5)
            produce()
        except KafkaException as exc:
            raise BrokerError(f"cannot publish to {topic} on {self.bootstrap}: {exc}") from exc
        self._producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait for outstanding messages; returns how many are still undelivered."""
        return int(self._producer.flush(timeout_s))


class KafkaDeadLetters:
    def __init__(self, publisher: KafkaPublisher, topic: str) -> None:
        self.publisher = publisher
        self.topic = topic

    def publish(
        self,
        value: bytes,
        *,
        reason: str,
        where: Mapping[str, str] | None = None,
        key: bytes | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        record = router_dead_letter(value, reason=reason, where=where, key=key, details=details)
        self.publisher.publish(self.topic, record, key=key)


def router_dead_letter(
    value: bytes,
    *,
    reason: str,
    where: Mapping[str, str] | None = None,
    key: bytes | None = None,
    details: Mapping[str, str] | None = None,
) -> bytes:
    """The router's dead-letter record: a message of ``where`` (topic, partition, offset),
    or without ``where`` an undeliverable notification."""
    where = where or {}
    topic = where.get("topic")
    return encode_dead_letter(
        reason=reason,
        stage="router",
        raw=value,
        raw_is="message" if topic else "notification",
        source_topic=topic,
        source_partition=_int(where.get("partition")),
        source_offset=_int(where.get("offset")),
        key=key,
        details=details,
    )


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


class KafkaAlertSink:
    """Publishes alerts the router raises itself (``receiver_failing``), key = team."""

    def __init__(self, publisher: KafkaPublisher, topic: str) -> None:
        self.publisher = publisher
        self.topic = topic

    def publish(self, alert: Alert) -> None:
        self.publisher.publish(
            self.topic, alert.model_dump_json().encode(), key=alert.team.encode()
        )


def _reader(bootstrap: KafkaConnection | str, *, client_id: str) -> Consumer:
    return Consumer(
        {
            **connection(bootstrap).librdkafka_config(),
            "group.id": f"{client_id}-unused",  # never joined: partitions are assigned directly
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "log_level": _LIBRDKAFKA_LOG_LEVEL,
        }
    )


class SilenceTopic:
    """``tokengov.silences``: compacted, key = silence id, the latest version wins."""

    def __init__(self, bootstrap: KafkaConnection | str, topic: str) -> None:
        self.kafka = connection(bootstrap)
        self.bootstrap = self.kafka.bootstrap
        self.topic = topic

    def publish(self, silence: Silence, *, timeout_s: float = 10.0) -> None:
        publisher = KafkaPublisher(self.kafka, client_id="tokengov-silences")
        publisher.publish(self.topic, silence.to_json(), key=silence.silence_id.encode())
        if publisher.flush(timeout_s) or publisher.failed:
            raise BrokerError(
                f"silence {silence.silence_id} was not acknowledged by {self.bootstrap} "
                f"within {timeout_s:g}s (topic {self.topic})"
            )

    def _partitions(self, consumer: Consumer, timeout_s: float) -> list[TopicPartition]:
        try:
            metadata = consumer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException as exc:
            raise BrokerError(f"cannot reach {self.bootstrap}: {exc}") from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise BrokerError(
                f"topic {self.topic} does not exist on {self.bootstrap} (create the topics first)"
            )
        return [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(topic.partitions)]

    def _assign_all(self, consumer: Consumer, timeout_s: float) -> dict[int, int]:
        """Assign every partition from its start; returns each partition's end offset."""
        partitions = self._partitions(consumer, timeout_s)
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
            for tp in partitions
        }
        consumer.assign(partitions)
        return ends

    def _poll(self, consumer: Consumer, doing: str) -> tuple[int, int, Silence | None] | None:
        """The next message as (partition, offset, its silence or None), or None when
        there was none or it was an error (logged)."""
        msg = consumer.poll(0.2)
        if msg is None:
            return None
        if msg.error():
            log.warning("%s %s: %s", doing, self.topic, msg.error())
            return None
        partition, offset = msg.partition() or 0, msg.offset() or 0
        return partition, offset, _decode(msg.value(), partition, offset)

    def read_all(self, *, timeout_s: float = 10.0) -> list[Silence]:
        """Every silence on the topic, latest version of each."""
        consumer = _reader(self.kafka, client_id="tokengov-silences-reader")
        try:
            ends = self._assign_all(consumer, timeout_s)
            remaining = {p for p, high in ends.items() if high > 0}
            found: dict[str, Silence] = {}
            deadline = time.monotonic() + timeout_s
            while remaining and time.monotonic() < deadline:
                polled = self._poll(consumer, "reading")
                if polled is None:
                    continue
                partition, offset, silence = polled
                if silence is not None:
                    known = found.get(silence.silence_id)
                    if known is None or silence.updated_at >= known.updated_at:
                        found[silence.silence_id] = silence
                if offset + 1 >= ends[partition]:
                    remaining.discard(partition)
            if remaining:
                raise BrokerError(f"timed out reading {self.topic} from {self.bootstrap}")
            return sorted(found.values(), key=lambda s: (s.starts_at, s.silence_id))
        finally:
            consumer.close()

    def follow(
        self,
        on_silence: Callable[[Silence], None],
        stop: threading.Event,
        *,
        on_caught_up: Callable[[set[str]], None] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Apply every silence on the topic, then every new one, until ``stop`` is set.
        ``on_caught_up`` gets the ids seen once the topic's backlog has been read."""
        consumer = _reader(self.kafka, client_id="tokengov-silences-follower")
        try:
            ends = self._assign_all(consumer, timeout_s)
            behind = {p for p, high in ends.items() if high > 0}
            seen: set[str] = set()
            if not behind and on_caught_up:
                on_caught_up(seen)
            while not stop.is_set():
                polled = self._poll(consumer, "following")
                if polled is None:
                    continue
                partition, offset, silence = polled
                if silence is not None:
                    seen.add(silence.silence_id)
                    on_silence(silence)
                if behind and offset + 1 >= ends.get(partition, 0):
                    behind.discard(partition)
                    if not behind and on_caught_up:
                        on_caught_up(seen)
        finally:
            consumer.close()


def _decode(value: bytes | None, partition: int, offset: int) -> Silence | None:
    if value is None:
        return None  # a tombstone
    try:
        return Silence.from_json(value)
    except ValueError as exc:
        log.error(
            "silences partition %d offset %d: not a silence, skipped: %s", partition, offset, exc
        )
        return None
