"""Recovering governance when the streams' state topics are gone (an embedded restart).

The worker's entrypoint asks :func:`state_gone` before it reads a
:class:`~tokengov.core.recovery.RecoverySeed` from the store (it reads the seed before its own
ClickHouse writer stores anything new, so the seed and the new events never overlap), and
hands it over in :class:`~tokengov.core.worker_context.WorkerContext`. Stage 2 applies it to an empty
aggregate state only (:meth:`tokengov.streams.core.Aggregator.seed`), re-publishes the decisions
still in force (:func:`decisions_to_restore`), and every alert already published is known
to the suppressor from the start. State topics that hold anything mean the state is
intact (production, replicated Kafka): no seed is read, nothing is counted twice.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaException, TopicPartition

from tokengov.core.contracts import Decision
from tokengov.core.errors import BrokerError
from tokengov.core.kafka import KafkaConnection, connection, end_offsets, latest_by_key, read_to_end
from tokengov.core.topics import Topics
from tokengov.streams.topics import StreamsTopics

__all__ = ["RESTORED_CAUSE", "decisions_to_restore", "stage1_would_reread", "state_gone"]

log = logging.getLogger(__name__)

#: Cause header of a decision re-published from the store (the ledger reads it back).
RESTORED_CAUSE = "restored"


def _empty(bootstrap: KafkaConnection | str, topic: str) -> bool:
    try:
        ends = end_offsets(bootstrap, topic)
    except BrokerError as exc:
        if "no such topic" in str(exc):
            return True
        raise
    return not any(ends.values())


def state_gone(bootstrap: KafkaConnection | str, topics: Topics) -> bool:
    """True when neither stage's state topic holds a record (or they do not exist yet)."""
    names = StreamsTopics.for_topics(topics)
    return _empty(bootstrap, names.aggregate_state) and _empty(bootstrap, names.state)


def stage1_would_reread(bootstrap: KafkaConnection | str, topic: str, group: str) -> list[int]:
    """The partitions of ``topic`` that stage 1 (consumer group ``group``) would read from their
    beginning: they hold records and the group has no committed position on them.

    Those records may already be in the store (a streams role deployed anew over an existing
    topic and store), so a seed read from the store would count them twice.
    """
    ends = end_offsets(bootstrap, topic)
    holding = [p for p, end in ends.items() if end > 0]
    if not holding:
        return []
    consumer = Consumer(
        {
            **connection(bootstrap).librdkafka_config(),
            "group.id": group,  # committed() only: never subscribes, never joins
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
        }
    )
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in holding], timeout=30)
    except KafkaException as exc:
        raise BrokerError(f"reading {group}'s positions on {topic} at {bootstrap}: {exc}") from exc
    finally:
        consumer.close()
    return sorted(int(tp.partition) for tp in committed if tp.offset < 0)


def decisions_to_restore(
    bootstrap: KafkaConnection | str, topics: Topics, in_force: tuple[Decision, ...]
) -> list[Decision]:
    """The decisions of ``in_force`` whose key has no decision on the topic yet (a human may
    have lifted one with ``tokengov decisions lift`` since the restart: that one stands)."""
    if not in_force:
        return []
    on_topic = latest_by_key(read_to_end(bootstrap, topics.decisions))
    restore = [d for d in in_force if d.topic_key not in on_topic]
    log.info(
        "decisions in force before the restart: %d, re-publishing %d (%d already on %s)",
        len(in_force),
        len(restore),
        len(in_force) - len(restore),
        topics.decisions,
    )
    return restore
