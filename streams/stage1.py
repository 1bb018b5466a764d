"""The thin adapter around stage 1: Kafka messages in, core calls, outputs and state out.

Per message: decode (single events and batch envelopes), dead-letter what
cannot be trusted, run every event through its partition's
:class:`~streams.core.PartitionProcessor`, publish the alerts and decisions
it produced right away. Every ``flush_interval`` (or ``max_pending``
messages): wait until those outputs are delivered, send the partials to
stage 2 and wait, write the changed state records, and only then ack the
messages — so a committed offset always has its state and outputs behind it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import faust

from streams.core import Output, PartitionProcessor, Suppressor, codec, position
from streams.core.clock import Clock
from streams.deadletter import dead_letter
from streams.decode import decode_events
from streams.kafka_read import Record, latest_by_key, read_to_end
from streams.ledger import read_published
from streams.publisher import Publisher
from streams.topics import StreamsTopics
from streams.views import ViewHolder
from tokengov.runtime import WorkerContext

__all__ = ["Stage1"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 30.0
FULL_GC_INTERVAL_S = 600.0


class Stage1:
    def __init__(
        self,
        ctx: WorkerContext,
        names: StreamsTopics,
        views: ViewHolder,
        publisher: Publisher,
        suppressor: Suppressor,
        clock: Clock,
        *,
        flush_interval_s: float = 0.5,
        max_pending: int = 2000,
    ) -> None:
        self.ctx = ctx
        self.names = names
        self.views = views
        self.publisher = publisher
        self.suppressor = suppressor
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.processors: dict[int, PartitionProcessor] = {}
        self.assigned: set[int] = set()
        self.pending: list[tuple[Any, faust.types.EventT[Any]]] = []  # (stream, event) to ack
        self.lock = asyncio.Lock()
        self.out = Output(suppressor=suppressor)
        self.last_flush = time.monotonic()
        self.last_sweep = time.monotonic()
        self.last_full_gc = time.monotonic()
        self.ledger_fresh = False
        self.stats = {"messages": 0, "events": 0, "dead_lettered": 0, "failed": 0}

    # ------------------------------------------------------------ partitions

    async def on_assigned(self, partitions: set[int]) -> None:
        """A new assignment. Faust waits for every message to be acked before it revokes, so
        the state of a partition we keep is current; the others are dropped, and newly
        assigned ones are loaded on first use, after reading back what was published."""
        async with self.lock:
            self.assigned = set(partitions)
            for p in list(self.processors):
                if p not in partitions:
                    del self.processors[p]
            if partitions - set(self.processors):
                self.ledger_fresh = False
            self.pending = [(s, e) for s, e in self.pending if e.message.partition in partitions]

    async def _processor(self, partition: int) -> PartitionProcessor:
        proc = self.processors.get(partition)
        if proc is not None:
            return proc
        bootstrap = self.ctx.bootstrap
        settings = self.views.view.settings
        if not self.ledger_fresh:
            known = await asyncio.to_thread(
                read_published, bootstrap, self.ctx.topics, settings.alert_ledger_lookback
            )
            self.suppressor.known |= known
            self.ledger_fresh = True
        # load every assigned partition we do not hold yet in one read of the state topic
        wanted = sorted((self.assigned - set(self.processors)) | {partition})
        started = time.monotonic()
        records = await asyncio.to_thread(self._read_state, wanted)
        for p in wanted:
            proc = PartitionProcessor.load(p, records.get(p, {}).items(), settings, self.clock)
            self.processors[p] = proc
            log.info(
                "partition %d: state recovered (%d tasks, applied up to offset %d)",
                p,
                len(proc.tasks),
                proc.agg.applied_pos >> 20 if proc.agg.applied_pos >= 0 else -1,
            )
        log.info("state of partitions %s recovered in %.2fs", wanted, time.monotonic() - started)
        return self.processors[partition]

    def _read_state(self, partitions: list[int]) -> dict[int, dict[str, bytes]]:
        by_partition: dict[int, list[Record]] = {p: [] for p in partitions}
        for record in read_to_end(self.ctx.bootstrap, self.names.state, partitions):
            by_partition[record.partition].append(record)
        return {p: latest_by_key(iter(records)) for p, records in by_partition.items()}

    # ------------------------------------------------------------ messages

    async def handle(self, stream: Any, event: faust.types.EventT[Any]) -> None:
        async with self.lock:
            message = event.message
            partition, offset = message.partition, message.offset
            proc = await self._processor(partition)
            raw = message.value
            decoded = decode_events(raw)
            self.stats["messages"] += 1
            for failure, item in decoded.failures:
                self._dead_letter(
                    message, failure.reason, "decode", failure.index, failure.event_id, item
                )
            view = self.views.view
            proc.begin()
            out = self.out
            for index, item_event in decoded.events:
                try:
                    proc.process(item_event, position(offset, index), view, out)
                except Exception as exc:  # a bug must not stop the partition: dead-letter it
                    self.stats["failed"] += 1
                    log.exception(
                        "processing failed: %s partition %d offset %d index %d event_id %s",
                        message.topic,
                        partition,
                        offset,
                        index,
                        item_event.event_id,
                    )
                    self._dead_letter(
                        message,
                        f"processing failed: {type(exc).__name__}: {exc}",
                        "process",
                        index if decoded.envelope else None,
                        item_event.event_id,
                        None,  # the whole message; ``index`` names the event in it
                    )
            self.stats["events"] += len(decoded.events)
            if out:
                self.publisher.outputs(out)
            self.pending.append((stream, event))
            if (
                len(self.pending) >= self.max_pending
                or time.monotonic() - self.last_flush >= self.flush_interval_s
            ):
                await self._flush()

    def _dead_letter(
        self,
        message: Any,
        reason: str,
        stage: Any,
        index: int | None,
        event_id: str | None,
        item: Any,
    ) -> None:
        self.stats["dead_lettered"] += 1
        log.warning(
            "dead-letter %s partition %d offset %d index %s event_id %s: %s",
            message.topic,
            message.partition,
            message.offset,
            index,
            event_id,
            reason,
        )
        record = dead_letter(
            reason=reason,
            stage=stage,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            raw=message.value,
            index=index,
            event_id=event_id,
            item=item,
        )
        self.publisher.dead_letter(message.key, record)

    # ------------------------------------------------------------ flushing

    async def flush_if_due(self) -> None:
        if self.pending and time.monotonic() - self.last_flush >= self.flush_interval_s:
            async with self.lock:
                await self._flush()

    async def _flush(self) -> None:
        self.last_flush = time.monotonic()
        # 1. alerts, decisions and dead letters are on the broker
        await self.publisher.delivered()
        # 2. the partials reach stage 2 before the state that produced them is persisted
        for p, proc in self.processors.items():
            partial = proc.agg.take_partial()
            if partial is not None:
                self.publisher.send(self.names.partials, f"p{p}".encode(), _dumps(partial))
        await self.publisher.delivered()
        # 3. state records (Faust flushes the producer before it commits offsets)
        sweep = time.monotonic() - self.last_sweep >= SWEEP_INTERVAL_S
        if sweep:
            self.last_sweep = time.monotonic()
        settings = self.views.view.settings
        for p, proc in self.processors.items():
            proc.agg.expire()
            if sweep:
                proc.sweep(settings)
            for key, value in proc.take_records():
                self.publisher.send(self.names.state, key.encode(), value, partition=p)
        # 4. only now may the offsets be committed
        pending, self.pending = self.pending, []
        for stream, event in pending:
            await stream.ack(event)
        self._gc()

    def _gc(self) -> None:
        """Keep the cyclic GC off the state: the per-task state is acyclic and long-lived, and
        a full collection over millions of its objects stalls the loop for hundreds of ms
        (measured). Everything alive now is frozen out of the collector; a full collection
        runs every ``FULL_GC_INTERVAL_S``."""
        now = time.monotonic()
        if now - self.last_full_gc >= FULL_GC_INTERVAL_S:
            self.last_full_gc = now
            gc.unfreeze()
            gc.collect()
        gc.freeze()


def _dumps(doc: dict[str, Any]) -> bytes:
    return codec.dumps(doc)
