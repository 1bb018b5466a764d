"""``tokengov.router-state``: the compacted topic holding each alerts partition's router state.

:class:`RouterStateTopic` writes the records of :class:`~tokengov.sinks.router.state.PartitionState`
to the partition they belong to (explicitly: the state of alerts partition p goes to
partition p, whatever a partitioner would make of the key) and reads partitions back to
their end when a router is assigned them. Writes are queued at once (``linger.ms`` 0);
:meth:`RouterStateTopic.persist` waits until the broker acknowledged every one — the router
calls it before it acknowledges an alert and before it gives partitions up.

With a :class:`~tokengov.sinks.router.snapshot.LocalSnapshot`, every write is copied there
too, and a router that finds the whole topic empty (the embedded broker restarted) publishes
the copy of each partition it is assigned back to the topic before it reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from tokengov.core.kafka import (
    CheckedProducer,
    KafkaConnection,
    Record,
    connection,
    end_offsets,
    latest_by_key,
    read_to_end,
)
from tokengov.sinks.router.snapshot import LocalSnapshot

__all__ = ["RouterStateTopic"]

log = logging.getLogger(__name__)


class RouterStateTopic:
    def __init__(
        self,
        kafka: KafkaConnection | str,
        topic: str,
        *,
        snapshot: LocalSnapshot | None = None,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.kafka = connection(kafka)
        self.topic = topic
        self.snapshot = snapshot
        self.read_timeout_s = read_timeout_s
        self._producer = CheckedProducer(
            self.kafka,
            client_id="tokengov-router-state",
            options={"linger.ms": 0, "enable.idempotence": True},
        )

    # ------------------------------------------------------------------ writing

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        self._producer.publish(self.topic, value, key=key, partition=partition)
        if self.snapshot is not None:
            self.snapshot.put(partition, key, value)

    def persist(self, timeout_s: float = 15.0) -> None:
        """Wait until the broker has every record written so far; :class:`BrokerError` if not."""
        self._producer.deliver(timeout_s, what=f"router state records (topic {self.topic})")

    # ------------------------------------------------------------------ reading

    def read(self, partitions: Iterable[int]) -> dict[int, dict[bytes, bytes]]:
        """The latest record of every key of ``partitions``, read to their end (re-seeded
        from the local snapshot first when the whole topic is empty)."""
        wanted = sorted(set(partitions))
        found = self._read(wanted)
        if self.snapshot is not None and not any(found.values()) and self._topic_empty():
            seeded = {p: self.snapshot.records(p) for p in wanted}
            if any(seeded.values()):
                for p, records in seeded.items():
                    for key, value in records.items():
                        self._producer.publish(self.topic, value, key=key, partition=p)
                self.persist()
                log.warning(
                    "%s was empty (the broker restarted without it): re-seeded partitions %s "
                    "from %s (%d records)",
                    self.topic,
                    wanted,
                    self.snapshot.path,
                    sum(len(r) for r in seeded.values()),
                )
                found = seeded
        if self.snapshot is not None:
            for p in wanted:
                self.snapshot.replace(p, found[p])
        return found

    def _read(self, partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
        by_partition: dict[int, list[Record]] = {p: [] for p in partitions}
        if partitions:
            for record in read_to_end(
                self.kafka, self.topic, partitions, timeout_s=self.read_timeout_s
            ):
                by_partition[record.partition].append(record)
        return {
            p: {k.encode(): v for k, v in latest_by_key(iter(records)).items()}
            for p, records in by_partition.items()
        }

    def _topic_empty(self) -> bool:
        return not any(end_offsets(self.kafka, self.topic).values())

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)
