"""Reading a topic (or one partition of it) up to its current end, without a consumer group.

Used to rebuild state when a worker takes over partitions and to read back
what was already published. ``assign()`` without a group reads its first
message in ~0.1 s (DESIGN.md); the end is the high watermark seen at the start.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from tokengov.errors import BrokerError
from tokengov.kafka import KafkaConnection, connection

__all__ = ["Record", "end_offsets", "latest_by_key", "read_to_end"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    #: The record's Kafka timestamp (ms since the epoch), when the broker gave one.
    timestamp_ms: int | None = None


def _consumer(bootstrap: KafkaConnection | str) -> Consumer:
    return Consumer(
        {
            **connection(bootstrap).librdkafka_config(),
            "group.id": f"tokengov-reader-{uuid.uuid4().hex}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            "socket.connection.setup.timeout.ms": 5000,
        }
    )


def _partitions(
    consumer: Consumer, topic: str, bootstrap: KafkaConnection | str, timeout_s: float
) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    meta = metadata.topics.get(topic)
    if meta is None or meta.error is not None:
        raise BrokerError(f"cannot read {topic} on {bootstrap}: no such topic")
    return sorted(meta.partitions)


def read_to_end(
    bootstrap: KafkaConnection | str,
    topic: str,
    partitions: Sequence[int] | None = None,
    *,
    since_ms: int | None = None,
    timeout_s: float = 60.0,
) -> Iterator[Record]:
    """Every record of ``topic`` (or of ``partitions``) from the beginning — or from the first
    record at or after ``since_ms`` — up to the end of each partition.

    The end is where a fetch reports end-of-partition: Tansu answers ListOffsets(latest)
    with the base offset of the last batch rather than the next offset, so the watermark
    it returns cannot be trusted as the end."""
    consumer = _consumer(bootstrap)
    try:
        if partitions is None:
            partitions = _partitions(consumer, topic, bootstrap, timeout_s)
        starts = {p: OFFSET_BEGINNING for p in partitions}
        if since_ms is not None:
            wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
            try:
                for tp in consumer.offsets_for_times(wanted, timeout=timeout_s):
                    if tp.offset >= 0:
                        starts[tp.partition] = tp.offset
            except KafkaException as exc:  # a broker without time index: read it all
                log.debug("offsets_for_times on %s failed (%s); reading from the start", topic, exc)
        remaining = set(partitions)
        if not remaining:
            return
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in remaining])
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"reading {topic} partitions {sorted(remaining)} on {bootstrap} did not reach "
                    f"the end within {timeout_s:.0f}s"
                )
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                        continue
                    raise BrokerError(f"reading {topic} on {bootstrap}: {err}")
                headers: dict[str, bytes] = {}
                for header in msg.headers() or []:
                    name, raw = header[0], header[1]
                    headers[name] = raw.encode() if isinstance(raw, str) else (raw or b"")
                kind, stamp = msg.timestamp()
                yield Record(
                    int(msg.partition() or 0),
                    int(msg.offset() or 0),
                    msg.key(),
                    msg.value(),
                    headers,
                    stamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
                )
    except KafkaException as exc:
        raise BrokerError(f"reading {topic} on {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def end_offsets(
    bootstrap: KafkaConnection | str, topic: str, timeout_s: float = 30.0
) -> dict[int, int]:
    """The next offset of every partition, as a fetch reports it (see :func:`read_to_end`)."""
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, topic, bootstrap, timeout_s)
        starts = {}
        for p in partitions:  # a lower bound from ListOffsets: little left to read from there
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            starts[p] = max(high, 0)
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(partitions):
            if time.monotonic() > deadline:
                raise BrokerError(f"no end-of-partition from {topic} on {bootstrap}")
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    ends[int(msg.partition() or 0)] = int(msg.offset() or 0)
                elif err is not None:
                    raise BrokerError(f"reading {topic} on {bootstrap}: {err}")
        return ends
    except KafkaException as exc:
        raise BrokerError(f"reading {topic} on {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def latest_by_key(records: Iterator[Record]) -> dict[str, bytes]:
    """What a compacted topic means: the last value of each key; a null value deletes it."""
    latest: dict[str, bytes] = {}
    for record in records:
        if record.key is None:
            continue
        key = record.key.decode("utf-8", "replace")
        if record.value is None:
            latest.pop(key, None)
        else:
            latest[key] = record.value
    return latest
