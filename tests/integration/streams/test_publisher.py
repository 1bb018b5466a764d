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


def test_delivered_waits_for_every_record(bootstrap: str, topic_names: Topics) -> None:
    # records would wait 60 s in the producer's queue but for delivered()'s flush
    publisher = Publisher(bootstrap, topic_names, config={"linger.ms": 60_000})
    try:
        records = [(f"task-{i}", f"state {i}".encode()) for i in range(500)]
        publisher.send_all(topic_names.events, records, 1)
        asyncio.run(publisher.delivered())
        # read before close() (which flushes): delivered() alone must have put every record
        # on the broker
        stored = [(r.key, r.value) for r in read_to_end(bootstrap, topic_names.events, [1])]
    finally:
        publisher.close()
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
