"""Several routers: each owns the partitions of ``tokengov.alerts`` it is assigned.

Alerts are keyed by team (every producer of the project partitions keys with murmur2, like
the Java client), so a team's alerts all land in one partition, and the router replicas share
one consumer group. :class:`PartitionedDispatcher` keeps one
:class:`~tokengov.sinks.router.dispatcher.Dispatcher` per owned partition — its groups, its
notification log, its outbox and its own inhibitor — behind the interface the
:class:`~tokengov.sinks.router.router.Router` uses. A group is therefore scoped to its
partition: a ``group_by`` without ``team`` groups the alerts of the teams of one partition
together, and the teams of other partitions apart (docs/alerting.md).

Partitions come and go with the group's rebalances (:mod:`tokengov.sinks.router.role`):
:meth:`~PartitionedDispatcher.suspend` stops a partition's timers when it is revoked (the
role then waits a little for :meth:`~PartitionedDispatcher.in_flight` deliveries to end),
:meth:`~PartitionedDispatcher.keep_only` forgets the partitions not assigned again, and
:meth:`~PartitionedDispatcher.add` installs a partition whose state was read back. Only
partitions that are added and not suspended are flushed.

Alerts the router raises itself (``receiver_failing``) are published on the topic too: the
owner of their partition routes them. This router files one only when it owns that
partition (:meth:`~PartitionedDispatcher.ingest` without a partition), so two replicas never
both page about it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from aiokafka.partitioner import murmur2

from tokengov.core.contracts import Alert, utcnow
from tokengov.sinks.router.dispatcher import Clock, Dispatcher
from tokengov.sinks.router.group import AggrGroup
from tokengov.sinks.router.inhibit import Inhibitor
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.silences import SilenceStore
from tokengov.sinks.router.state import RouterState
from tokengov.sinks.router.tree import RouteTree

__all__ = ["PartitionedDispatcher", "partition_of"]

log = logging.getLogger(__name__)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the project's producers (librdkafka ``murmur2_random``, the Java
    client's default) send ``key`` to."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


class PartitionedDispatcher:
    """One dispatcher per owned alerts partition, seen as one."""

    def __init__(
        self,
        tree: RouteTree,
        *,
        partitions: int,
        inhibitor_factory: Callable[[], Inhibitor],
        silences: SilenceStore | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.tree = tree
        self.partitions = partitions
        self.inhibitor_factory = inhibitor_factory
        self.silences = silences or SilenceStore()
        self.clock = clock
        self.shards: dict[int, Dispatcher] = {}
        self.suspended: set[int] = set()
        self._owner: dict[str, int] = {}  # notification id -> partition, until its outcome
        self._counters: Counter[str] = Counter()
        self._results: Counter[tuple[str, str]] = Counter()
        #: Set at every delivery outcome (a router giving partitions up waits for them).
        self.outcome = asyncio.Event()

    # ------------------------------------------------------------- ownership

    def add(self, partition: int, state: RouterState) -> list[Notification]:
        """Own ``partition`` with the state read back; returns its outbox (to deliver)."""
        shard = Dispatcher(
            self.tree,
            state,
            inhibitor=self.inhibitor_factory(),
            silences=self.silences,
            clock=self.clock,
        )
        self.shards[partition] = shard
        self.suspended.discard(partition)
        pending = shard.pending()
        for notification in pending:
            self._owner[notification.notification_id] = partition
        log.info(
            "alerts partition %d taken over: %d group(s), %d notification(s) to deliver",
            partition,
            len(shard.groups),
            len(pending),
        )
        return pending

    def suspend(self, partitions: Iterable[int]) -> None:
        """Revoked: no more flushes of these partitions until they are assigned again."""
        self.suspended |= set(partitions) & set(self.shards)

    def keep_only(self, partitions: Iterable[int]) -> set[int]:
        """The new assignment: forget every other partition, resume the ones kept; returns
        the partitions of the assignment not held yet (to read back)."""
        wanted = set(partitions)
        for partition in set(self.shards) - wanted:
            shard = self.shards.pop(partition)
            self._counters.update(shard.counters)
            self._results.update(shard.results)
            self._owner = {n: p for n, p in self._owner.items() if p != partition}
            log.info(
                "alerts partition %d given up: forgot its %d group(s)",
                partition,
                len(shard.groups),
            )
        self.suspended.clear()  # the partitions kept resume
        return wanted - set(self.shards)

    def owns(self, partition: int) -> bool:
        return partition in self.shards and partition not in self.suspended

    def in_flight(self, partitions: Iterable[int]) -> int:
        """Notifications of ``partitions`` handed to delivery and not finished yet."""
        wanted = set(partitions)
        return sum(1 for p in self._owner.values() if p in wanted)

    # ------------------------------------------------------------ the Router's

    def set_tree(self, tree: RouteTree, inhibitor_factory: Callable[[], Inhibitor]) -> None:
        self.tree = tree
        self.inhibitor_factory = inhibitor_factory
        for shard in self.shards.values():
            shard.set_tree(tree, inhibitor_factory())

    def ingest(self, alert: Alert, partition: int | None = None) -> list[str]:
        """File an alert read from ``partition``; without one (an alert this router raised and
        also published), in the partition its team key maps to — if this router owns it."""
        if partition is None:
            partition = partition_of(alert.team.encode(), self.partitions)
            if partition not in self.shards:
                self._counters["own_alerts_left_to_owner"] += 1
                return []
        shard = self.shards.get(partition)
        if shard is None:
            raise LookupError(f"alerts partition {partition} is not owned by this router")
        return shard.ingest(alert)

    def _active(self) -> list[tuple[int, Dispatcher]]:
        return [(p, d) for p, d in self.shards.items() if p not in self.suspended]

    def next_deadline(self) -> datetime | None:
        deadlines = [d for _, s in self._active() if (d := s.next_deadline()) is not None]
        return min(deadlines, default=None)

    def flush_due(self) -> list[Notification]:
        out: list[Notification] = []
        for partition, shard in self._active():
            for notification in shard.flush_due():
                self._owner[notification.notification_id] = partition
                out.append(notification)
        return out

    def pending(self) -> list[Notification]:
        return [n for _, s in self._active() for n in s.pending()]

    def _shard_of(self, notification: Notification, outcome: str) -> Dispatcher | None:
        self.outcome.set()
        partition = self._owner.pop(notification.notification_id, None)
        shard = None if partition is None else self.shards.get(partition)
        if shard is None:
            self._counters[f"outcomes_after_revocation_{outcome}"] += 1
            log.warning(
                "notification %s %s after its partition was given up: not recorded here "
                "(the partition's new owner delivers it from the outbox)",
                notification.notification_id,
                outcome,
            )
        return shard

    def delivered(self, notification: Notification) -> None:
        shard = self._shard_of(notification, "delivered")
        if shard is not None:
            shard.delivered(notification)

    def abandoned(self, notification: Notification) -> None:
        shard = self._shard_of(notification, "abandoned")
        if shard is not None:
            shard.abandoned(notification)

    def maintenance(self) -> int:
        return sum(s.maintenance() for _, s in self._active())

    # -------------------------------------------------------------- inspection

    @property
    def groups(self) -> dict[tuple[int, str], AggrGroup]:
        """Every owned group, by (partition, group key)."""
        return {(p, k): g for p, s in self.shards.items() for k, g in s.groups.items()}

    @property
    def counters(self) -> Counter[str]:
        total = Counter(self._counters)
        for shard in self.shards.values():
            total.update(shard.counters)
        return total

    @property
    def results(self) -> Counter[tuple[str, str]]:
        """Notifications finished, by (receiver, result), over every partition ever owned."""
        total = Counter(self._results)
        for shard in self.shards.values():
            total.update(shard.results)
        return total
