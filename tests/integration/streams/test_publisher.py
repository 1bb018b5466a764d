"""The streams' publisher against the real broker: delivery reports come for failures only
(``delivery.report.only.error``), and :meth:`Publisher.delivered` still waits for every record
and still raises for one the broker did not take."""

from __future__ import annotations

import asyncio

import pytest

from tokengov.core.errors import BrokerError
from tokengov.core.kafka import read_to_end
from tokengov.core.topics import Topics
from tokengov.streams.publisher import Publisher


def _sent_and_stored(
    publisher: Publisher, bootstrap: str, topic: str, records: list[tuple[str, bytes]], p: int
) -> list[tuple[bytes | None, bytes | None]]:
    """``send_all`` then ``delivered()``; partition ``p`` as the broker has it, read before
    ``close()`` (which flushes: what is on the broker then is what ``delivered()`` put there)."""
    try:
        publisher.send_all(topic, records, p)
        asyncio.run(publisher.delivered())
        return [(r.key, r.value) for r in read_to_end(bootstrap, topic, [p])]
    finally:
        publisher.close()


def test_delivered_waits_for_every_record(bootstrap: str, topic_names: Topics) -> None:
    # records would wait 60 s in the producer's queue but for delivered()'s flush
    publisher = Publisher(bootstrap, topic_names, config={"linger.ms": 60_000})
    records = [(f"task-{i}", f"state {i}".encode()) for i in range(500)]
    stored = _sent_and_stored(publisher, bootstrap, topic_names.events, records, 1)
    assert stored == [(k.encode(), v) for k, v in records]


def test_a_record_the_broker_refuses_fails_the_barrier(bootstrap: str, topic_names: Topics) -> None:
    # a topic that does not exist (the publisher never creates one): librdkafka fails the
    # record once the metadata says so; its delivery report is the only one that comes
    publisher = Publisher(
        bootstrap,
        topic_names,
        config={"message.timeout.ms": 3000, "topic.metadata.propagation.max.ms": 1000},
    )
    try:
        publisher.send(topic_names.events, b"k", b"delivered")
        publisher.send(f"{topic_names.events}-missing", b"k", b"refused")
        with pytest.raises(BrokerError, match=r"1 message\(s\) not delivered, e\.g\. .*-missing"):
            asyncio.run(publisher.delivered(timeout_s=10))
    finally:
        publisher.close(1)


def test_send_all_waits_out_a_full_local_queue(bootstrap: str, topic_names: Topics) -> None:
    # librdkafka's local queue holds 10 records: send_all's produce is refused (BufferError)
    # most of the way and its slow path waits for room; every record still goes, in order
    publisher = Publisher(bootstrap, topic_names, config={"queue.buffering.max.messages": 10})
    slow_path = publisher._produce
    slow_calls: list[bytes | None] = []

    def counted(topic: str, value: bytes | None, key: bytes | None, partition: int) -> None:
        slow_calls.append(key)
        slow_path(topic, value, key, partition)

    publisher._produce = counted  # type: ignore[method-assign]  # observed, not replaced
    records = [(f"task-{i}", f"state {i}".encode()) for i in range(200)]
    stored = _sent_and_stored(publisher, bootstrap, topic_names.events, records, 2)
    assert publisher.sent["records"] == 200
    assert slow_calls  # the queue was full at least once
    assert stored == [(k.encode(), v) for k, v in records]
