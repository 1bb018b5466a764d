"""What the writer buffers, when it flushes, and how a flush is made idempotent (pure).

A *flush* is every buffered message of some Kafka partitions, each partition a
contiguous offset range. Its *token* is derived from those ranges, so the
same ranges always give the same token, and ClickHouse's insert deduplication
(per table, and for the rollups the views feed) turns a repeated insert of the
same flush into a no-op. Before inserting, the writer records the flush's
*plan* (ranges, token, the event ids it leaves out as duplicates) in
``sink_batches``; after a crash, a partition whose committed offset is the
start of a plan is re-read into exactly that flush (:class:`Batcher` in
recovery), and the insert repeats with the same token and the same exclusions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from sinks.clickhouse.decode import TOKEN_EVENTS, Decoded, Item, Reject

__all__ = [
    "Batcher",
    "Consumed",
    "Flush",
    "PartitionSlice",
    "Plan",
    "TopicPartitionKey",
    "flush_token",
]

TopicPartitionKey = tuple[str, int]
TOKEN_PREFIX: Final = "tokengov-sink"


@dataclass(frozen=True, slots=True)
class Consumed:
    """One Kafka message, decoded."""

    topic: str
    partition: int
    offset: int
    decoded: Decoded

    @property
    def rows(self) -> int:
        return len(self.decoded.items)


@dataclass(slots=True)
class PartitionSlice:
    topic: str
    partition: int
    messages: list[Consumed] = field(default_factory=list)

    @property
    def key(self) -> TopicPartitionKey:
        return (self.topic, self.partition)

    @property
    def start(self) -> int:
        return self.messages[0].offset

    @property
    def end(self) -> int:
        return self.messages[-1].offset

    @property
    def rows(self) -> int:
        return sum(m.rows for m in self.messages)


@dataclass(frozen=True, slots=True)
class Plan:
    """One partition's part of a flush, as recorded in ``sink_batches``."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    token: str
    skipped_event_ids: tuple[str, ...] = ()


def flush_token(group: str, ranges: Iterable[tuple[str, int, int, int]]) -> str:
    """Deterministic token of a flush from its (topic, partition, start, end) ranges."""
    spec = ";".join(f"{t}:{p}:{s}-{e}" for t, p, s, e in sorted(ranges))
    digest = hashlib.sha256(f"{group}|{spec}".encode()).hexdigest()[:32]
    return f"{TOKEN_PREFIX}:{digest}"


@dataclass
class Flush:
    """What one insert round writes: rows per table, the rejects, the offsets to commit."""

    token: str
    slices: list[PartitionSlice]
    skipped_event_ids: frozenset[str] = frozenset()
    recovered: bool = False

    @classmethod
    def of(cls, group: str, slices: list[PartitionSlice]) -> Flush:
        slices = sorted((s for s in slices if s.messages), key=lambda s: s.key)
        token = flush_token(group, ((s.topic, s.partition, s.start, s.end) for s in slices))
        return cls(token, slices)

    def items(self) -> Iterator[tuple[Consumed, Item]]:
        for piece in self.slices:
            for message in piece.messages:
                for item in message.decoded.items:
                    yield message, item

    def event_ids(self) -> list[str]:
        return [i.event_id for _, i in self.items() if i.event_id is not None]

    def rows_by_table(self) -> dict[str, list[tuple[Consumed, Item]]]:
        """Items per table in a deterministic order; event rows whose id is skipped, or that
        repeat an earlier row of the flush, are left out."""
        tables: dict[str, list[tuple[Consumed, Item]]] = {}
        seen: set[str] = set()
        for message, item in self.items():
            if item.event_id is not None:
                if item.event_id in self.skipped_event_ids or item.event_id in seen:
                    continue
                seen.add(item.event_id)
            tables.setdefault(item.table, []).append((message, item))
        return tables

    def keyed_event_ids(self) -> list[tuple[str, Any]]:
        """(event_id, ts) of every deduplicated row, for the lookup in the store."""
        return [(i.event_id, i.ts) for _, i in self.items() if i.event_id is not None]

    def rejects(self) -> list[tuple[Consumed, Reject]]:
        return [(m, r) for s in self.slices for m in s.messages for r in m.decoded.rejects]

    def plans(self) -> list[Plan]:
        by_partition: dict[TopicPartitionKey, list[str]] = {}
        for message, item in self.items():
            if item.event_id is not None and item.event_id in self.skipped_event_ids:
                by_partition.setdefault((message.topic, message.partition), []).append(
                    item.event_id
                )
        return [
            Plan(s.topic, s.partition, s.start, s.end, self.token,
                 tuple(sorted(set(by_partition.get(s.key, ())))))
            for s in self.slices
        ]

    def commit_offsets(self) -> list[tuple[str, int, int]]:
        """(topic, partition, next offset) for every partition of the flush."""
        return [(s.topic, s.partition, s.end + 1) for s in self.slices]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.slices)

    @property
    def messages(self) -> int:
        return sum(len(s.messages) for s in self.slices)

    def without(self, keys: set[TopicPartitionKey], group: str) -> Flush:
        """This flush minus some partitions (revoked): a different flush, a different token."""
        return Flush.of(group, [s for s in self.slices if s.key not in keys])


@dataclass
class _Recovery:
    """A flush being re-read after a crash: every partition's plan, and what arrived so far."""

    token: str
    plans: dict[TopicPartitionKey, Plan]
    slices: dict[TopicPartitionKey, PartitionSlice]
    complete: set[TopicPartitionKey] = field(default_factory=set)
    started_at: float = 0.0

    def ready(self) -> bool:
        return self.complete == set(self.plans)


class Batcher:
    """Buffers decoded messages per partition; a flush is due at ``max_rows`` rows or when
    the oldest buffered message is ``max_delay_s`` old (``clock`` is injectable)."""

    def __init__(
        self,
        group: str,
        *,
        max_rows: int,
        max_delay_s: float,
        clock: Callable[[], float],
        recovery_timeout_s: float = 30.0,
    ) -> None:
        if max_rows < 1 or max_delay_s <= 0:
            raise ValueError("max_rows must be ≥ 1 and max_delay_s > 0")
        self.group = group
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self.recovery_timeout_s = recovery_timeout_s
        self._clock = clock
        self._slices: dict[TopicPartitionKey, PartitionSlice] = {}
        self._rows = 0
        self._messages = 0
        self._oldest: float | None = None
        self._recoveries: dict[str, _Recovery] = {}
        self._recovering: dict[TopicPartitionKey, str] = {}  # partition → recovery token
        self._fresh: set[TopicPartitionKey] = set()  # recovery partitions with no message yet
        self.recoveries_cancelled = 0

    # -- normal buffering -----------------------------------------------------------

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def messages(self) -> int:
        return self._messages

    def add(self, message: Consumed) -> None:
        key = (message.topic, message.partition)
        token = self._recovering.get(key)
        if token is not None and self._add_recovery(token, key, message):
            return
        piece = self._slices.get(key)
        if piece is None:
            piece = self._slices[key] = PartitionSlice(message.topic, message.partition)
        piece.messages.append(message)
        self._rows += message.rows
        self._messages += 1
        if self._oldest is None:
            self._oldest = self._clock()

    def due(self) -> bool:
        if not self._flushable():
            return False
        if self._rows >= self.max_rows:
            return True
        return self._oldest is not None and self._clock() - self._oldest >= self.max_delay_s

    def _flushable(self) -> bool:
        return any(k not in self._recovering for k in self._slices)

    def take(self) -> Flush | None:
        """Everything buffered, except partitions still being recovered (their later
        offsets must not be committed before the recovered flush is)."""
        keys = [k for k in self._slices if k not in self._recovering]
        if not keys:
            return None
        slices = [self._slices.pop(k) for k in keys]
        self._recount()
        return Flush.of(self.group, slices)

    def _recount(self) -> None:
        self._rows = sum(s.rows for s in self._slices.values())
        self._messages = sum(len(s.messages) for s in self._slices.values())
        self._oldest = self._clock() if self._slices else None

    def revoke(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Forget partitions this writer no longer owns (their new owner re-reads them)."""
        for key in list(keys):
            self._slices.pop(key, None)
            token = self._recovering.get(key)
            if token is not None:
                self._cancel(token, drop={key})
        self._recount()

    # -- recovery -------------------------------------------------------------------

    def expect(self, plans: Iterable[Plan], owned: set[TopicPartitionKey]) -> list[str]:
        """Arm recovery for each flush whose partitions are all ``owned``. Returns the
        tokens armed; a flush split between writers is left to the event-id filter."""
        grouped: dict[str, dict[TopicPartitionKey, Plan]] = {}
        for plan in plans:
            grouped.setdefault(plan.token, {})[(plan.topic, plan.partition)] = plan
        armed: list[str] = []
        for token, by_key in grouped.items():
            if not set(by_key) <= owned or any(k in self._recovering for k in by_key):
                continue
            self._recoveries[token] = _Recovery(
                token, by_key, {k: PartitionSlice(*k) for k in by_key},
                started_at=self._clock(),
            )
            for key in by_key:
                self._recovering[key] = token
                self._fresh.add(key)
            armed.append(token)
        return armed

    def _add_recovery(self, token: str, key: TopicPartitionKey, message: Consumed) -> bool:
        """True when the message belongs to the flush being recovered."""
        recovery = self._recoveries[token]
        plan = recovery.plans[key]
        if key in self._fresh:
            self._fresh.discard(key)
            if message.offset != plan.start_offset:
                # The partition did not restart where the plan began: the plan is stale.
                self._cancel(token)
                return False
        if key in recovery.complete or message.offset > plan.end_offset:
            recovery.complete.add(key)
            return False
        recovery.slices[key].messages.append(message)
        if message.offset >= plan.end_offset:
            recovery.complete.add(key)
        return True

    def take_recovered(self) -> Flush | None:
        """A recovered flush whose partitions have all been re-read, with its original
        token and exclusions; or None."""
        for token, recovery in list(self._recoveries.items()):
            if not recovery.ready():
                continue
            del self._recoveries[token]
            for key in recovery.plans:
                self._recovering.pop(key, None)
            skipped = frozenset(e for p in recovery.plans.values() for e in p.skipped_event_ids)
            slices = [s for s in recovery.slices.values() if s.messages]
            slices.sort(key=lambda s: s.key)
            return Flush(token, slices, skipped, recovered=True)
        return None

    def expire_recoveries(self) -> list[str]:
        """Give up recoveries that did not complete in time (their messages are then
        buffered normally and deduplicated by event id). Returns the tokens given up."""
        now = self._clock()
        expired = [t for t, r in self._recoveries.items()
                   if now - r.started_at >= self.recovery_timeout_s]
        for token in expired:
            self._cancel(token)
        return expired

    def _cancel(self, token: str, drop: set[TopicPartitionKey] | None = None) -> None:
        recovery = self._recoveries.pop(token, None)
        if recovery is None:
            return
        self.recoveries_cancelled += 1
        for key in recovery.plans:
            self._recovering.pop(key, None)
            self._fresh.discard(key)
        for key, piece in recovery.slices.items():
            if drop and key in drop:
                continue
            later = self._slices.pop(key, None)
            merged = PartitionSlice(*key, piece.messages + (later.messages if later else []))
            if merged.messages:
                self._slices[key] = merged
        self._recount()

    @property
    def recovering(self) -> bool:
        return bool(self._recoveries)
