"""A seed is read only when nothing stored can be read again: stage 1 without a committed
position on a partition that holds records would re-read them (a streams role deployed anew
over an existing topic and store), so ``--recover auto`` seeds nothing there; a committed
position on every such partition (state topics lost, offsets kept) lets it seed."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from tokengov.core.topics import Topics
from tokengov.streams.recovery import stage1_would_reread


def _produce(bootstrap: str, topic: str, partitions: list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})
    for p in partitions:
        producer.produce(topic, b'{"kind": "call"}', key=b"k", partition=p)
    assert producer.flush(30) == 0


def _commit(bootstrap: str, topic: str, group: str, offsets: dict[int, int]) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def test_stage1_rereads_partitions_with_records_and_no_position(
    bootstrap: str, topic_names: Topics, topic_prefix: str
) -> None:
    group = f"{topic_prefix}tokengov-worker"
    events = topic_names.events
    assert stage1_would_reread(bootstrap, events, group) == []  # empty topic: nothing to re-read

    _produce(bootstrap, events, [0, 2, 2])
    assert stage1_would_reread(bootstrap, events, group) == [0, 2]

    _commit(bootstrap, events, group, {2: 2})
    assert stage1_would_reread(bootstrap, events, group) == [0]

    _commit(bootstrap, events, group, {0: 1})
    assert stage1_would_reread(bootstrap, events, group) == []
    # another group's positions are not stage 1's
    assert stage1_would_reread(bootstrap, events, f"{group}-sink") == [0, 2]
