"""The shared Kafka helpers of tokengov/core/kafka.py against the real broker: a producer whose
every delivery is checked, and a compacted topic read whole then followed."""

from __future__ import annotations

import threading
import uuid

import pytest

from tokengov.core.errors import BrokerError
from tokengov.core.kafka import (
    CheckedProducer,
    Record,
    follow_compacted,
    latest_by_key,
    read_to_end,
)
from tokengov.core.topics import Topics

pytestmark = pytest.mark.integration


def test_deliver_raises_unless_every_message_was_acknowledged(
    bootstrap: str, topic_names: Topics
) -> None:
    producer = CheckedProducer(bootstrap, options={"message.timeout.ms": 1500})
    producer.publish(topic_names.silences, b"kept", key=b"k")
    producer.deliver(10)  # acknowledged: no error
    missing = f"no-such-topic-{uuid.uuid4().hex}"  # never auto-created: delivery fails
    producer.publish(missing, b"lost", key=b"k")
    with pytest.raises(BrokerError, match=r"0 still pending after 10s, 1 failed"):
        producer.deliver(10, what="the test message")
    producer.publish(topic_names.silences, b"again", key=b"k")
    producer.deliver(10)  # counting starts anew after a deliver()
    assert [r.value for r in read_to_end(bootstrap, topic_names.silences)] == [b"kept", b"again"]


def test_follow_compacted_reads_the_backlog_then_follows(
    bootstrap: str, topic_names: Topics
) -> None:
    topic = topic_names.silences
    producer = CheckedProducer(bootstrap)
    for key, value in ((b"a", b"1"), (b"b", b"1"), (b"a", b"2")):
        producer.publish(topic, value, key=key)
    producer.deliver(10)
    seen: list[Record] = []
    caught_up = threading.Event()
    backlog: list[Record] = []
    stop = threading.Event()

    def on_caught_up() -> None:
        backlog.extend(seen)
        caught_up.set()

    follower = threading.Thread(
        target=follow_compacted,
        args=(bootstrap, topic, seen.append, stop),
        kwargs={"on_caught_up": on_caught_up},
    )
    follower.start()
    try:
        assert caught_up.wait(20), "never caught up with the backlog"
        assert latest_by_key(iter(backlog)) == {"a": b"2", "b": b"1"}
        producer.publish(topic, None, key=b"b")  # a tombstone deletes b
        producer.deliver(10)
        for _ in range(200):
            if len(seen) == 4:
                break
            threading.Event().wait(0.05)
        assert latest_by_key(iter(seen)) == {"a": b"2"}
    finally:
        stop.set()
        follower.join(10)
    assert not follower.is_alive()


def test_follow_compacted_names_a_missing_topic(bootstrap: str) -> None:
    with pytest.raises(BrokerError, match="no such topic"):
        follow_compacted(bootstrap, f"missing-{uuid.uuid4().hex}", print, threading.Event())
