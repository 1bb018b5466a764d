"""The streams role's own topics, next to the project's (same prefix).

- ``<prefix>tokengov.streams.state`` — compacted, as many partitions as
  ``tokengov.events``: each partition's task states, dedup buckets and
  partials record (stage 1), written with the partition of the events they
  describe, read back when a worker takes the partition over.
- ``<prefix>tokengov.streams.partials`` — one partition: cumulative partials
  from stage 1 to stage 2.
- ``<prefix>tokengov.streams.aggregate-state`` — compacted, one partition:
  stage 2's budgets, windows and unit metrics.
- ``<prefix>tokengov.streams.debt-tallies`` — compacted, as many partitions as
  ``tokengov.events``: token debt's per-partition tallies of each workflow (key
  ``<workflow>|p<partition>``, in the workflow's partition: the owner of that partition
  judges the workflow) and each events partition's handover record
  (:mod:`tokengov.streams.debt.wire`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tokengov.core.errors import BrokerError
from tokengov.core.kafka import KafkaConnection
from tokengov.core.topics import EVENTS, Topics, TopicSpec, ensure_topics, partition_count

__all__ = ["StreamsTopics", "ensure_streams_topics", "event_partitions"]

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


def topic_prefix(topics: Topics) -> str:
    """The prefix a :class:`Topics` value was made with (tests give each run its own)."""
    return topics.events.removesuffix(EVENTS) if topics.events.endswith(EVENTS) else ""


@dataclass(frozen=True)
class StreamsTopics:
    state: str
    partials: str
    aggregate_state: str
    debt_tallies: str

    @classmethod
    def for_topics(cls, topics: Topics) -> StreamsTopics:
        if topics.events.endswith(EVENTS):
            base = f"{topic_prefix(topics)}tokengov.streams"
        else:
            base = f"{topics.events}.streams"
        return cls(
            f"{base}.state",
            f"{base}.partials",
            f"{base}.aggregate-state",
            f"{base}.debt-tallies",
        )

    def specs(self, event_partitions: int) -> list[TopicSpec]:
        return [
            TopicSpec(self.state, event_partitions, dict(COMPACTED)),
            TopicSpec(self.partials, 1),
            TopicSpec(self.aggregate_state, 1, dict(COMPACTED)),
            TopicSpec(self.debt_tallies, event_partitions, dict(COMPACTED)),
        ]


def event_partitions(
    bootstrap: KafkaConnection | str, events_topic: str, timeout_s: float = 15.0
) -> int:
    """How many partitions ``tokengov.events`` has (the state topic needs as many)."""
    return partition_count(bootstrap, events_topic, timeout_s=timeout_s)


def ensure_streams_topics(
    bootstrap: KafkaConnection | str, topics: Topics
) -> tuple[StreamsTopics, int]:
    """Create the role's topics if missing; check the state topic matches the event partitions."""
    names = StreamsTopics.for_topics(topics)
    partitions = event_partitions(bootstrap, topics.events)
    ensure_topics(bootstrap, names.specs(partitions))
    state_partitions = event_partitions(bootstrap, names.state)
    if state_partitions != partitions:
        raise BrokerError(
            f"{names.state} has {state_partitions} partitions but {topics.events} has "
            f"{partitions}; they must match (add partitions to {names.state})"
        )
    return names, partitions
