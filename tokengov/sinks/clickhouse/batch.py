"""What the writer buffers, when it flushes, and what one flush writes (pure; no I/O).

A *flush* is every buffered message of some Kafka partitions, each partition a
contiguous offset range, held as runs of messages (:class:`Consumed`) that the
decoder pool encoded (:mod:`tokengov.sinks.clickhouse.encode`). Its rows go in as the
runs' Native blocks; when rows must be left out — their event id is already
stored (``skipped_event_ids``, filled by the writer) or repeats an earlier row of
the flush — the flush is decoded again into rows (:meth:`Flush.decode`). Each
insert's deduplication token is derived from the rows it actually carries: the
same rows give the same token, different rows a different one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from tokengov.sinks.clickhouse.decode import Decoded, Item, Reject
from tokengov.sinks.clickhouse.encode import Encoded, summarize

__all__ = [
    "Batcher",
    "Consumed",
    "Flush",
    "Origin",
    "PartitionSlice",
    "Plan",
    "TopicPartitionKey",
    "content_token",
]

TopicPartitionKey = tuple[str, int]
#: Where a row or a reject came from: (topic, partition, offset).
Origin = tuple[str, int, int]
TOKEN_PREFIX: Final = "tokengov-sink"  # noqa: S105


@dataclass(slots=True)
class Consumed:
    """A run of consecutive messages of one partition (ascending offsets), encoded for
    ClickHouse. ``decoded`` (one per message) is filled only when the row path needs it."""

    topic: str
    partition: int
    offsets: list[int]
    values: list[bytes | None]
    encoded: Encoded
    decoded: list[Decoded] | None = None

    @classmethod
    def of_decoded(cls, topic: str, partition: int, offset: int, decoded: Decoded) -> Consumed:
        """One message decoded here, without Native blocks (its rows take the row path)."""
        encoded, _rows = summarize([decoded])
        return cls(topic, partition, [offset], [None], encoded, [decoded])

    @property
    def offset(self) -> int:
        return self.offsets[0]

    @property
    def end(self) -> int:
        return self.offsets[-1]

    @property
    def rows(self) -> int:
        return self.encoded.row_count


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
        return self.messages[-1].end

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
    repeats: bool = False  # an event id occurs more than once in the flush
    reconcile: bool = False  # an earlier attempt may have been applied in part
    #: ClickHouse kept failing on this flush: insert row by row, skip rows that cannot go in.
    stuck: bool = False
    #: Single rows that may fail, with nothing of their table stored, before an attempt gives
    #: up (the table is failing); doubles with each attempt (see the writer's _insert_bisect).
    stuck_budget: int = 8

    @classmethod
    def of(cls, slices: Iterable[PartitionSlice]) -> Flush:
        return cls(sorted((s for s in slices if s.messages), key=lambda s: s.key))

    @property
    def decoded(self) -> bool:
        """Whether every message's rows are at hand (the row path)."""
        return all(m.decoded is not None for s in self.slices for m in s.messages)

    def decode(self, decode: Callable[[str, Sequence[bytes | None]], list[Decoded]]) -> None:
        """Fill in the rows of every run (``decode(topic, values)`` decodes its messages)."""
        for piece in self.slices:
            for message in piece.messages:
                if message.decoded is None:
                    message.decoded = decode(message.topic, message.values)

    def items(self) -> Iterator[tuple[Origin, Item]]:
        """Every row of the flush with its message (needs :meth:`decode` first)."""
        for piece in self.slices:
            for message in piece.messages:
                if message.decoded is None:
                    raise RuntimeError("rows asked of a flush that was not decoded")
                for offset, decoded in zip(message.offsets, message.decoded, strict=True):
                    origin = (message.topic, message.partition, offset)
                    for item in decoded.items:
                        yield origin, item

    def keyed_event_ids(self, table: str) -> tuple[list[str], list[int]]:
        """Event ids of ``table``'s rows and their timestamps (ms since the epoch, as stored)."""
        ids: list[str] = []
        stamps: list[int] = []
        for piece in self.slices:
            for message in piece.messages:
                ids.extend(message.encoded.ids.get(table, ()))
                stamps.extend(message.encoded.ts_ms.get(table, ()))
        return ids, stamps

    def tables(self) -> list[str]:
        """The tables this flush has rows for, in a fixed order."""
        found = {t for s in self.slices for m in s.messages for t, n in m.encoded.rows.items() if n}
        return sorted(found)

    def native(self, table: str) -> bytes | None:
        """``table``'s rows as one Native insert body, or None when some run has no block
        for it (its values could not be serialized: the row path finds out why)."""
        blocks: list[bytes] = []
        for piece in self.slices:
            for message in piece.messages:
                if message.encoded.rows.get(table):
                    block = message.encoded.blocks.get(table)
                    if block is None:
                        return None
                    blocks.append(block)
        return b"".join(blocks)

    def rows_of(self, table: str) -> int:
        return sum(m.encoded.rows.get(table, 0) for s in self.slices for m in s.messages)

    def rows_by_table(self) -> dict[str, list[tuple[Origin, Item]]]:
        """Items per table in a deterministic order; rows whose event id is already stored,
        or repeats an earlier row of the flush, are left out (needs :meth:`decode` first)."""
        tables: dict[str, list[tuple[Origin, Item]]] = {}
        seen: set[str] = set()
        for origin, item in self.items():
            if item.event_id is not None:
                if item.event_id in self.skipped_event_ids or item.event_id in seen:
                    continue
                seen.add(item.event_id)
            tables.setdefault(item.table, []).append((origin, item))
        return tables

    def rejects(self) -> list[tuple[Origin, Reject]]:
        return [
            ((m.topic, m.partition, m.offsets[index]), reject)
            for s in self.slices
            for m in s.messages
            for index, reject in m.encoded.rejects
        ]

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
        return sum(len(m.offsets) for s in self.slices for m in s.messages)

    def without(self, keys: set[TopicPartitionKey]) -> Flush:
        """This flush minus some partitions (revoked from this writer)."""
        return Flush(
            [s for s in self.slices if s.key not in keys],
            self.skipped_event_ids,
            self.repeats,
            self.reconcile,
            self.stuck,
            self.stuck_budget,
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
        self._messages += len(message.offsets)
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
                self._messages -= sum(len(m.offsets) for m in piece.messages)
        if not self._slices:
            self._oldest = None
