"""What the writer buffers, when it flushes, and what one flush writes (pure; no I/O).

A *flush* is every buffered message of some Kafka partitions, each partition a
contiguous offset range. It leaves out the rows whose event id is already
stored (``skipped_event_ids``, filled by the writer) or repeated earlier in the
flush, and derives each insert's deduplication token from the rows it actually
carries: the same rows give the same token, different rows a different one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sinks.clickhouse.decode import Decoded, Item, Reject

__all__ = [
    "Batcher",
    "Consumed",
    "Flush",
    "PartitionSlice",
    "Plan",
    "TopicPartitionKey",
    "content_token",
]

TopicPartitionKey = tuple[str, int]
TOKEN_PREFIX: Final = "tokengov-sink"  # noqa: S105


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
    """One partition's offsets in a flush, recorded in ``sink_batches`` before inserting."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int


def content_token(table: str, flush: Flush) -> str:
    """The deduplication token of ``table``'s insert for ``flush``: its rows are fixed by
    the flush's offset ranges and the ids it leaves out, so those fix the token."""
    digest = hashlib.sha256(table.encode())
    for piece in flush.slices:
        digest.update(f"|{piece.topic}:{piece.partition}:{piece.start}-{piece.end}".encode())
    for event_id in sorted(flush.skipped_event_ids):
        digest.update(f"|-{event_id}".encode())
    return f"{TOKEN_PREFIX}:{digest.hexdigest()[:40]}"


@dataclass
class Flush:
    """What one insert round writes: rows per table, the rejects, the offsets to commit."""

    slices: list[PartitionSlice]
    skipped_event_ids: frozenset[str] = frozenset()
    reconcile: bool = False  # an earlier attempt may have been applied in part

    @classmethod
    def of(cls, slices: Iterable[PartitionSlice]) -> Flush:
        return cls(sorted((s for s in slices if s.messages), key=lambda s: s.key))

    def items(self) -> Iterator[tuple[Consumed, Item]]:
        for piece in self.slices:
            for message in piece.messages:
                for item in message.decoded.items:
                    yield message, item

    def keyed_event_ids(self, table: str) -> list[tuple[str, datetime]]:
        """(event_id, ts) of the rows of ``table`` deduplicated by event id."""
        return [
            (i.event_id, i.ts)
            for _, i in self.items()
            if i.table == table and i.event_id is not None and i.ts is not None
        ]

    def rows_by_table(self) -> dict[str, list[tuple[Consumed, Item]]]:
        """Items per table in a deterministic order; rows whose event id is already stored,
        or repeats an earlier row of the flush, are left out."""
        tables: dict[str, list[tuple[Consumed, Item]]] = {}
        seen: set[str] = set()
        for message, item in self.items():
            if item.event_id is not None:
                if item.event_id in self.skipped_event_ids or item.event_id in seen:
                    continue
                seen.add(item.event_id)
            tables.setdefault(item.table, []).append((message, item))
        return tables

    def rejects(self) -> list[tuple[Consumed, Reject]]:
        return [(m, r) for s in self.slices for m in s.messages for r in m.decoded.rejects]

    def plans(self) -> list[Plan]:
        return [Plan(s.topic, s.partition, s.start, s.end) for s in self.slices]

    def commit_offsets(self) -> list[tuple[str, int, int]]:
        """(topic, partition, next offset) for every partition of the flush."""
        return [(s.topic, s.partition, s.end + 1) for s in self.slices]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.slices)

    @property
    def messages(self) -> int:
        return sum(len(s.messages) for s in self.slices)

    def without(self, keys: set[TopicPartitionKey]) -> Flush:
        """This flush minus some partitions (revoked from this writer)."""
        return Flush(
            [s for s in self.slices if s.key not in keys], self.skipped_event_ids, self.reconcile
        )


class Batcher:
    """Buffers decoded messages per partition; a flush is due at ``max_rows`` rows or when
    the oldest buffered message is ``max_delay_s`` old (``clock`` is injectable)."""

    def __init__(self, *, max_rows: int, max_delay_s: float, clock: Callable[[], float]) -> None:
        if max_rows < 1 or max_delay_s <= 0:
            raise ValueError("max_rows must be ≥ 1 and max_delay_s > 0")
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._slices: dict[TopicPartitionKey, PartitionSlice] = {}
        self._rows = 0
        self._messages = 0
        self._oldest: float | None = None

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def messages(self) -> int:
        return self._messages

    def add(self, message: Consumed) -> None:
        key = (message.topic, message.partition)
        piece = self._slices.get(key)
        if piece is None:
            piece = self._slices[key] = PartitionSlice(message.topic, message.partition)
        piece.messages.append(message)
        self._rows += message.rows
        self._messages += 1
        if self._oldest is None:
            self._oldest = self._clock()

    def due(self) -> bool:
        if not self._slices:
            return False
        if self._rows >= self.max_rows:
            return True
        return self._oldest is not None and self._clock() - self._oldest >= self.max_delay_s

    def take(self) -> Flush | None:
        """Everything buffered, as one flush (None when nothing is)."""
        if not self._slices:
            return None
        flush = Flush.of(self._slices.values())
        self._slices = {}
        self._rows = self._messages = 0
        self._oldest = None
        return flush

    def revoke(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Forget partitions this writer no longer owns (their new owner re-reads them)."""
        for key in keys:
            piece = self._slices.pop(key, None)
            if piece is not None:
                self._rows -= piece.rows
                self._messages -= len(piece.messages)
        if not self._slices:
            self._oldest = None
