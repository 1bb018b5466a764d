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

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from tokengov.errors import BrokerError

__all__ = ["Record", "latest_by_key", "read_to_end"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"tokengov-reader-{uuid.uuid4().hex}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 50,
            "socket.connection.setup.timeout.ms": 5000,
        }
    )


def read_to_end(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int] | None = None,
    *,
    since_ms: int | None = None,
    timeout_s: float = 60.0,
) -> Iterator[Record]:
    """Every record of ``topic`` (or of ``partitions``) from the beginning — or from the first
    record at or after ``since_ms`` — up to the end as it was when the read began."""
    consumer = _consumer(bootstrap)
    try:
        if partitions is None:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                raise BrokerError(f"cannot read {topic} on {bootstrap}: no such topic")
            partitions = sorted(meta.partitions)
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p], starts[p] = high, low
        if not ends:
            return
        if since_ms is not None:
            wanted = [TopicPartition(topic, p, since_ms) for p in ends]
            try:
                for tp in consumer.offsets_for_times(wanted, timeout=timeout_s):
                    if tp.offset >= 0:
                        starts[tp.partition] = max(starts[tp.partition], tp.offset)
                    elif tp.offset == -1:  # nothing at or after since_ms
                        starts[tp.partition] = ends[tp.partition]
            except KafkaException as exc:  # a broker without time index: read it all
                log.debug("offsets_for_times on %s failed (%s); reading from the start", topic, exc)
        remaining = {p for p in ends if starts[p] < ends[p]}
        if not remaining:
            return
        consumer.assign(
            [
                TopicPartition(topic, p, starts[p] if starts[p] > 0 else OFFSET_BEGINNING)
                for p in remaining
            ]
        )
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
                        continue
                    raise BrokerError(f"reading {topic} on {bootstrap}: {err}")
                p, offset = msg.partition(), msg.offset()
                if p not in remaining:
                    continue
                if offset >= ends[p] - 1:
                    remaining.discard(p)
                if offset >= ends[p]:
                    continue
                headers = {k: v or b"" for k, v in (msg.headers() or [])}
                yield Record(p, offset, msg.key(), msg.value(), headers)
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
