"""Thin Kafka adapters for the router (confluent-kafka): a producer for dead letters
and ``receiver_failing`` alerts, and the ``tokengov.silences`` topic
(publish, read it whole, follow it).

Dead letters from the router are the core record (:mod:`tokengov.core.deadletter`, stage
``router``): an alert message that could not be taken (``raw_is: message``, with its
source topic/partition/offset and key), or the JSON payload of a notification that could
not be delivered (``raw_is: notification``; ``receiver``, ``notification_id`` and
``attempts`` in ``details``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from tokengov.core.contracts import Alert
from tokengov.core.deadletter import encode_dead_letter
from tokengov.core.kafka import (
    CheckedProducer,
    KafkaConnection,
    Record,
    connection,
    follow_compacted,
    read_to_end,
)
from tokengov.sinks.router.silences import Silence

__all__ = [
    "KafkaAlertSink",
    "KafkaDeadLetters",
    "SilenceTopic",
    "router_dead_letter",
]

log = logging.getLogger(__name__)
#: librdkafka's own log (syslog levels): connection retries are routine, our callers
#: report what failed; keep only critical messages out of the terminal.
_LIBRDKAFKA_LOG_LEVEL = 2


class KafkaDeadLetters:
    def __init__(self, publisher: CheckedProducer, topic: str) -> None:
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

    def __init__(self, publisher: CheckedProducer, topic: str) -> None:
        self.publisher = publisher
        self.topic = topic

    def publish(self, alert: Alert) -> None:
        self.publisher.publish(
            self.topic, alert.model_dump_json().encode(), key=alert.team.encode()
        )


class SilenceTopic:
    """``tokengov.silences``: compacted, key = silence id, the latest version wins."""

    def __init__(self, bootstrap: KafkaConnection | str, topic: str) -> None:
        self.kafka = connection(bootstrap)
        self.bootstrap = self.kafka.bootstrap
        self.topic = topic

    def publish(self, silence: Silence, *, timeout_s: float = 10.0) -> None:
        publisher = CheckedProducer(self.kafka, client_id="tokengov-silences")
        publisher.publish(self.topic, silence.to_json(), key=silence.silence_id.encode())
        publisher.deliver(timeout_s, what=f"silence {silence.silence_id} (topic {self.topic})")

    def read_all(self, *, timeout_s: float = 10.0) -> list[Silence]:
        """Every silence on the topic, latest version of each."""
        found: dict[str, Silence] = {}
        for record in read_to_end(self.kafka, self.topic, timeout_s=timeout_s):
            silence = _decode(record)
            if silence is not None:
                known = found.get(silence.silence_id)
                if known is None or silence.updated_at >= known.updated_at:
                    found[silence.silence_id] = silence
        return sorted(found.values(), key=lambda s: (s.starts_at, s.silence_id))

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
        seen: set[str] = set()

        def on_record(record: Record) -> None:
            silence = _decode(record)
            if silence is not None:
                seen.add(silence.silence_id)
                on_silence(silence)

        follow_compacted(
            self.kafka,
            self.topic,
            on_record,
            stop,
            on_caught_up=(lambda: on_caught_up(seen)) if on_caught_up is not None else None,
            client_id="tokengov-silences-follower",
            timeout_s=timeout_s,
        )


def _decode(record: Record) -> Silence | None:
    if record.value is None:
        return None  # a tombstone
    try:
        return Silence.from_json(record.value)
    except ValueError as exc:
        log.error(
            "silences partition %d offset %d: not a silence, skipped: %s",
            record.partition,
            record.offset,
            exc,
        )
        return None
