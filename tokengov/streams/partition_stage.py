"""The thin adapter around stage 1: Kafka messages in, core calls, outputs and state out.

Per message: decode (single events and batch envelopes), dead-letter what
cannot be trusted, run every event through its partition's
:class:`~tokengov.streams.core.PartitionProcessor`, publish the alerts and decisions
it produced right away. Every ``flush_interval`` (or ``max_pending``
messages), and as soon as the stream has been quiet for ``idle_flush`` (it caught up):
wait until those outputs are delivered, send the partials to
stage 2 and wait, write the changed state records, and only then ack the
messages — so a committed offset always has its state and outputs behind it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from tokengov.core.decoding import Decoded, decode_events
from tokengov.core.kafka import Record, latest_by_key, read_to_end
from tokengov.core.observability import LatencyHistogram
from tokengov.core.worker_context import WorkerContext
from tokengov.streams.attempts import AttemptLog
from tokengov.streams.core import Output, PartitionProcessor, Suppressor, codec
from tokengov.streams.core.clock import Clock
from tokengov.streams.deadletter import dead_letter
from tokengov.streams.policy_in_force import ViewHolder
from tokengov.streams.published_outputs import read_published
from tokengov.streams.publisher import Publisher
from tokengov.streams.topics import StreamsTopics

__all__ = ["Stage1", "Tap"]

log = logging.getLogger(__name__)

#: Another consumer of the decoded events in this process (the debt role's stage 1): called
#: once per message, with the message and what the one decode of it gave, under the lock.
Tap = Callable[[Any, Decoded], Awaitable[None]]

SWEEP_INTERVAL_S = 30.0
#: A stream quiet this long has caught up: the timer flushes what is pending then instead of
#: waiting out ``flush_interval`` (its commit, and the state behind it, up to ~0.4 s sooner).
IDLE_FLUSH_S = 0.05
FULL_GC_INTERVAL_S = 600.0
#: The cyclic GC's thresholds the streams and debt roles ask for (raised to, never lowered:
#: :func:`tokengov.core.process_tuning.raise_gc_thresholds`; CPython's default is
#: (700, 10, 10)). Every decoded call is a tracked object, and the debt role keeps a task's
#: calls until it closes, so at 700 allocations a young collection ran every ~200 events
#: and traversed calls that were still alive: 0.5-0.6 CPU µs per event in the worker,
#: against ~0.1 at 50,000 (gc callbacks' thread time over ``bench streams``' mix, 2026-12-06).
#: Nothing here makes cycles that matter (the state is acyclic and frozen after each flush,
#: with a full collection every ``FULL_GC_INTERVAL_S``), so a larger young generation costs
#: memory only for garbage in cycles, which waits a little longer.
GC_THRESHOLDS = (50_000, 20, 10)


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
        idle_flush_s: float = IDLE_FLUSH_S,
    ) -> None:
        self.ctx = ctx
        self.names = names
        self.views = views
        self.publisher = publisher
        self.suppressor = suppressor
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.idle_flush_s = idle_flush_s
        self.processors: dict[int, PartitionProcessor] = {}
        self.assigned: set[int] = set()
        self.pending: list[tuple[Any, faust.types.EventT[Any]]] = []  # (stream, event) to ack
        self.lock = asyncio.Lock()
        self.out = Output(suppressor=suppressor)
        self.last_flush = time.monotonic()
        #: when the last message was handled (the timer flushes once the stream is quiet)
        self.last_message = time.monotonic()
        self.last_sweep = time.monotonic()
        self.last_full_gc = time.monotonic()
        self.ledger_fresh = False
        self.stats = {
            "messages": 0,
            "events": 0,
            "dead_lettered": 0,
            "failed": 0,  # events whose processing raised (dead-lettered, stage "process")
            "retried": 0,  # messages whose handling raised and was tried again
            "skipped": 0,  # messages skipped after max_message_attempts (stage "skip")
            "state_errors": 0,  # state records that could not be written or read back
            "duplicates": 0,  # events whose event_id was seen before (counted once)
        }
        #: event time → alert published, for the alerts stage 1 raises (tokengov.app.metrics)
        self.alert_latency = LatencyHistogram()
        #: dead letters by reason class (``too_large``, ``invalid_json``, ``too_deep``,
        #: ``invalid_utf8``, ``contract``, ``process``, ``skip``)
        self.drops: Counter[str] = Counter()
        self.attempts = AttemptLog(ctx.settings.worker_state_dir / "attempts", ctx.topics.events)
        #: consumers of the same decoded events (one decode per message for the process)
        self.taps: list[Tap] = []
        #: commits the acked offsets (the role sets Faust's ``app.consumer.commit``): called,
        #: in a task of its own, after each flush that acked messages
        self.commit: Callable[[], Awaitable[Any]] | None = None
        self._committing: asyncio.Task[None] | None = None
        self._commit_again = False

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
        bootstrap = self.ctx.kafka
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
        for record in read_to_end(self.ctx.kafka, self.names.state, partitions):
            by_partition[record.partition].append(record)
        return {p: latest_by_key(iter(records)) for p, records in by_partition.items()}

    # ------------------------------------------------------------ messages

    async def handle(self, stream: Any, event: faust.types.EventT[Any]) -> None:
        async with self.lock:
            message = event.message
            partition, offset = message.partition, message.offset
            proc = await self._processor(partition)  # broker trouble here stops the worker
            self.stats["messages"] += 1
            limit = self.views.view.settings.max_message_attempts
            attempt = self.attempts.start(partition, offset)
            decoded: Decoded | None = None
            while True:
                if attempt > limit:
                    self._skip(message, attempt - 1)
                    break
                try:
                    if decoded is None:
                        decoded = decode_events(message.value)
                    self._handle_message(proc, message, decoded)
                    break
                except Exception:  # a bug: positions make trying again exact
                    self.stats["retried"] += 1
                    log.exception(
                        "handling failed (attempt %d of %d): %s partition %d offset %d",
                        attempt,
                        limit,
                        message.topic,
                        partition,
                        offset,
                    )
                    attempt = self.attempts.failed(partition, offset)
            self.attempts.done(partition, offset)
            if decoded is not None:
                for tap in self.taps:
                    await tap(message, decoded)
            self.pending.append((stream, event))
            self.last_message = now = time.monotonic()
            if (
                len(self.pending) >= self.max_pending
                or now - self.last_flush >= self.flush_interval_s
            ):
                await self._flush()

    def _skip(self, message: Any, attempts: int) -> None:
        """The message failed (or killed the worker) ``attempts`` times: dead-letter it whole."""
        self.stats["skipped"] += 1
        if self.out:  # what failed attempts applied and alerted on (already suppressed) goes out
            self.publisher.outputs(self.out)
        log.error(
            "SKIPPING a message that failed %d times: %s partition %d offset %d key %r "
            "(%d bytes) — dead-lettered whole; the partition goes on",
            attempts,
            message.topic,
            message.partition,
            message.offset,
            (message.key or b"")[:64],
            len(message.value or b""),
        )
        self._dead_letter(
            message,
            f"skipped after {attempts} failed attempts (it raised or killed the worker each "
            "time); see the worker log at this offset",
            "skip",
            None,
            None,
            None,
        )

    def _handle_message(self, proc: PartitionProcessor, message: Any, decoded: Decoded) -> None:
        partition, offset = message.partition, message.offset
        for failure, item in decoded.failures:
            self._dead_letter(
                message, failure.reason, "decode", failure.index, failure.event_id, item
            )
        view = self.views.view
        proc.begin()
        out = self.out
        duplicates = proc.agg.duplicates
        alert_ts_ms: list[int] = []
        failures: list[tuple[int, Any, Exception]] = []
        proc.process_batch(
            decoded.events, offset, view, out, alert_ts_ms=alert_ts_ms, failures=failures
        )
        if alert_ts_ms:
            now = time.time()
            for ts_ms in alert_ts_ms:
                self.alert_latency.observe(now - ts_ms / 1000)
        for index, item_event, exc in failures:  # a bug must not stop the partition
            self.stats["failed"] += 1
            log.error(
                "processing failed: %s partition %d offset %d index %d event_id %s",
                message.topic,
                partition,
                offset,
                index,
                item_event.event_id,
                exc_info=exc,
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
        self.stats["duplicates"] += proc.agg.duplicates - duplicates
        if out:
            self.publisher.outputs(out)

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
        self.drops[_drop_reason(stage, reason)] += 1
        log.warning(
            "dead-letter %s partition %d offset %d index %s event_id %s: %s",
            message.topic,
            message.partition,
            message.offset,
            index,
            event_id,
            reason if len(reason) <= 500 else f"{reason[:500]}… ({len(reason)} characters)",
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
        """The role's timer (every 0.1 s): flush what is pending once ``flush_interval`` has
        passed since the last flush, or as soon as no message has come for ``idle_flush``: the
        stream caught up, so its state and offsets need not wait out the interval (a busy
        stream flushes every ``flush_interval``; a quiet one within ~0.15 s of its last
        message, at most once a tick)."""
        if not self.pending:
            return
        now = time.monotonic()
        if (
            now - self.last_flush >= self.flush_interval_s
            or now - self.last_message >= self.idle_flush_s
        ):
            async with self.lock:
                if self.pending:  # (a message's own flush may have come first)
                    await self._flush()

    async def _flush(self) -> None:
        self.last_flush = time.monotonic()
        # 1. alerts, decisions and dead letters are on the broker
        await self.publisher.delivered()
        # 2. the partials reach stage 2 before the state that produced them is persisted
        for p, proc in self.processors.items():
            try:
                partial = proc.agg.take_partial()
                value = None if partial is None else _dumps(partial)
            except Exception:  # a bug: say so loudly, keep the partition going
                self.stats["state_errors"] += 1
                log.exception("partition %d: the partials could not be encoded", p)
                continue
            if value is not None:
                self.publisher.send(self.names.partials, f"p{p}".encode(), value)
        await self.publisher.delivered()
        # 3. state records (Faust flushes the producer before it commits offsets)
        sweep = time.monotonic() - self.last_sweep >= SWEEP_INTERVAL_S
        if sweep:
            self.last_sweep = time.monotonic()
        settings = self.views.view.settings
        for p, proc in self.processors.items():
            try:
                proc.agg.expire()
                if sweep:
                    proc.sweep(settings)
                records = proc.take_records()
            except Exception:  # a bug: say so loudly, keep the partition going
                self.stats["state_errors"] += 1
                log.exception("partition %d: the state records could not be made", p)
                continue
            self.stats["state_errors"] += proc.record_errors
            proc.record_errors = 0
            self.publisher.send_all(self.names.state, records, p)
        # 4. the state records are on the broker (Faust flushes only its own producer before
        #    it commits offsets, not this one)
        await self.publisher.delivered()
        # 5. only now may the offsets be committed: ack, and commit now rather than at Faust's
        #    next commit timer (up to ``broker_commit_interval`` later)
        pending, self.pending = self.pending, []
        for stream, event in pending:
            await stream.ack(event)
        if pending:
            self._commit_soon()
        self._gc()

    def _commit_soon(self) -> None:
        """Commit what is acked, in a task (the broker round trip is not waited for under the
        lock); a flush while a commit is in flight asks for one more after it."""
        if self.commit is None:
            return
        if self._committing is not None and not self._committing.done():
            self._commit_again = True
            return
        self._committing = asyncio.get_running_loop().create_task(self._commit_acked(self.commit))

    async def _commit_acked(self, commit: Callable[[], Awaitable[Any]]) -> None:
        while True:
            self._commit_again = False
            try:
                await commit()
            except Exception:  # Faust's commit timer commits them next
                log.exception("committing the acked offsets failed; the commit timer retries")
            if not self._commit_again:
                return

    def _gc(self) -> None:
        """Keep the cyclic GC off the state: the per-task state is acyclic and long-lived, and
        a full collection over millions of its objects stalls the loop for hundreds of ms
        (measured). Everything alive now is frozen out of the collector; a full collection
        runs every ``FULL_GC_INTERVAL_S``; in between, young collections run at the
        ``GC_THRESHOLDS`` the role asks for (:func:`tokengov.streams.role.register`)."""
        now = time.monotonic()
        if now - self.last_full_gc >= FULL_GC_INTERVAL_S:
            self.last_full_gc = now
            gc.unfreeze()
            gc.collect()
        gc.freeze()


async def commit_acked(app: faust.App) -> bool:
    """Commit the offsets acked so far on ``app``'s consumer now, rather than at Faust's next
    commit timer (``broker_commit_interval``). Nothing acked since the last commit: no broker
    request (Faust filters the partitions with pending acks first). A stopping consumer
    commits what is acked itself, so nothing is done then. Returns whether it committed."""
    consumer = app.consumer
    if consumer.should_stop:
        return False
    return bool(await consumer.commit())


def _drop_reason(stage: str, reason: str) -> str:
    """The class of a dead letter, for the counters."""
    if stage != "decode":
        return stage
    for marker, name in (
        ("message too large", "too_large"),
        ("nested", "too_deep"),
        ("UTF-8", "invalid_utf8"),
        ("not valid JSON", "invalid_json"),
        ("empty message", "invalid_json"),
    ):
        if marker in reason:
            return name
    return "contract"


def _dumps(doc: dict[str, Any]) -> bytes:
    return codec.dumps(doc)
