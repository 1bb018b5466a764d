"""The ClickHouse writer: Kafka → batches → ClickHouse → offsets, losing nothing, counting
nothing twice.

One thread runs a confluent-kafka consumer (group ``tokengov-sink``, manual
commits) over the events, alerts, decisions and findings topics, and hands runs
of messages to decoder processes (:mod:`tokengov.sinks.clickhouse.encode`) that return
them as ClickHouse Native blocks; it keeps them in the order read. Each flush:

1. looks up which of its event ids are already stored (replays, redeliveries,
   producer retries, a previous attempt) and leaves those rows out;
2. records its offset ranges in ``sink_batches`` (its *plan*);
3. inserts each table's rows with a deduplication token derived from those rows —
   the runs' Native blocks in one statement, or, when rows must be left out or
   ClickHouse refuses the blocks, the flush decoded again here into rows (the
   *row path*; a row ClickHouse rejects is isolated by bisection and
   dead-lettered with the server's message); the materialized views add them to
   the rollups;
4. if an earlier attempt of this flush may have been applied in part — the
   writer died between 2 and 5 (a plan whose range was not committed) or the
   store failed mid-insert — reconciles the rollups of every key the flush
   touches with the raw rows (reconcile.py);
5. produces its dead letters and waits for the broker's ack;
6. commits the offsets.

A crash anywhere before 6 re-reads the messages; step 1 then leaves out what
reached the raw tables and step 4 repairs the rollups. ClickHouse unreachable →
every assigned partition is paused (backpressure), the group membership is kept
alive, and the flush is retried with bounded exponential backoff until it goes
through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from tokengov.core.errors import SinkError
from tokengov.core.kafka import KafkaConnection, connection
from tokengov.core.observability import LatencyHistogram
from tokengov.core.topics import Topics
from tokengov.sinks.clickhouse.backoff import Backoff
from tokengov.sinks.clickhouse.batch import (
    Batcher,
    Consumed,
    Flush,
    Origin,
    TopicPartitionKey,
    content_token,
)
from tokengov.sinks.clickhouse.deadletter import DeadLetter, DeadLetterProducer
from tokengov.sinks.clickhouse.decode import (
    TASK_OUTCOMES,
    TOKEN_EVENTS,
    Item,
    MessageDecoder,
    TopicKind,
)
from tokengov.sinks.clickhouse.dedup import OwnRows, existing_event_ids
from tokengov.sinks.clickhouse.encode import (
    DEDUP_TABLES,
    DecodePool,
    Encoded,
    epoch_ms,
    merge,
    rejected,
)
from tokengov.sinks.clickhouse.flush_plans import load_plans, write_plans
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.reconcile import RollupKey, reconcile
from tokengov.sinks.clickhouse.rows import OUTCOME_COLUMNS, TABLE_COLUMNS, TOKEN_EVENT_COLUMNS
from tokengov.sinks.clickhouse.schema import SchemaOptions
from tokengov.sinks.clickhouse.store import ClickHouseStore, StoreError

__all__ = ["COLUMNS", "SinkConfig", "SinkCounters", "SinkWriter", "StageHook", "column_types"]

log = logging.getLogger(__name__)

COLUMNS: Final[Mapping[str, tuple[str, ...]]] = TABLE_COLUMNS

_TEAM, _WORKFLOW, _MODEL = (TOKEN_EVENT_COLUMNS.index(c) for c in ("team", "workflow", "model"))
_OUTCOME_TASK = OUTCOME_COLUMNS.index("task_id")

#: Called at each stage of a flush ("planned", "inserted", "committed"); tests use it.
StageHook = Callable[[str, Flush], None]


def column_types(store: ClickHouseStore) -> dict[str, list[str]]:
    """Each table's ClickHouse column types in row order (what the encoders serialize for)."""
    types: dict[str, list[str]] = {}
    for table, columns in COLUMNS.items():
        described = {str(r[0]): str(r[1]) for r in store.fetch(f"DESCRIBE TABLE {table}").rows}
        types[table] = [described[c] for c in columns]
    return types


#: The most single rows an attempt of a stuck flush tries while nothing of their table goes in.
_MAX_STUCK_BUDGET: Final = 1024
LAG_SAMPLE_S: Final = 5.0  # how often the writer samples its consumer lag (/metrics)


@dataclass
class _Budget:
    rows: int
    stored: int = 0


class _Abandoned(Exception):
    """The writer is stopping and the store did not come back in time."""


@dataclass(frozen=True)
class SinkConfig:
    group_id: str = "tokengov-sink"
    max_rows: int = 50_000
    max_delay_s: float = 1.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    stop_flush_timeout_s: float = 10.0
    poll_batch: int = 2000
    #: Decoder processes (0: decode in the writer's thread); see tokengov/sinks/clickhouse/encode.py.
    decoders: int = 0
    #: Messages per run handed to a decoder, and runs read ahead of the batch being written.
    run_messages: int = 20
    max_pending_messages: int = 4000
    #: Rows that are written as soon as the writer has caught up with its partitions.
    idle_rows: int = 5_000
    #: Tries to encode one message (a decoder process died on it, or a bug) before it is
    #: dead-lettered; and failed attempts of a flush on which ClickHouse answers with an
    #: error before the writer looks for the rows that cannot be stored (see _write).
    decode_attempts: int = 3
    stuck_attempts: int = 5
    #: Rows of its own recent inserts (per deduplicated table) the writer remembers, to settle
    #: a duplicate lookup in memory when the table holds exactly those rows in the flush's
    #: time ranges (tokengov/sinks/clickhouse/dedup.py); 0: always ask ClickHouse.
    own_rows: int = 200_000
    schema: SchemaOptions = field(default_factory=SchemaOptions)
    consumer: Mapping[str, Any] = field(default_factory=dict)

    def consumer_config(self, bootstrap: KafkaConnection | str) -> dict[str, Any]:
        """Manual commits; the group timeouts measured in DESIGN.md (a fast first join)."""
        config: dict[str, Any] = {
            **connection(bootstrap).librdkafka_config(),
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 7000,
            "partition.assignment.strategy": "roundrobin",
        }
        config.update(self.consumer)
        return config


@dataclass
class SinkCounters:
    """What happened to every message (read by tests, logs and the bench)."""

    messages: int = 0
    rows_inserted: dict[str, int] = field(default_factory=dict)
    invalid_events: int = 0
    tombstones: int = 0
    duplicates_skipped: int = 0
    dead_lettered: int = 0
    flushes: int = 0
    retries: int = 0
    commit_failures: int = 0
    reconciled_flushes: int = 0
    reconciled_rows: int = 0
    row_path_flushes: int = 0  # flushes decoded again into rows (duplicates, rejections)
    decoder_restarts: int = 0  # decoder processes replaced after one died
    isolated_runs: int = 0  # runs decoded again one message at a time after a failure
    stuck_rows: int = 0  # rows dead-lettered because every insert of them failed
    pauses: int = 0  # times consumption was paused because ClickHouse did not acknowledge
    #: Seconds from a flush's first attempt to its commit (retries included)
    flush_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    #: Duplicate lookups settled in memory: the table held exactly this writer's own rows
    #: in the flush's time ranges (no id sent to ClickHouse).
    lookups_in_memory: int = 0
    first_message_at: float | None = None  # monotonic time of the first message read
    #: The last invalid events skipped: (topic, partition, offset, why).
    recent_invalid: deque[tuple[str, int, int, str]] = field(
        default_factory=lambda: deque(maxlen=1000)
    )

    @property
    def rows(self) -> int:
        return sum(self.rows_inserted.values())


class SinkWriter:
    """Consumes ``topics`` and writes them to ``store``; run it with :meth:`start` (a
    thread) or :meth:`run` (blocking until ``stop`` is set)."""

    def __init__(
        self,
        *,
        bootstrap: KafkaConnection | str,
        topics: Topics,
        store: ClickHouseStore,
        decoder: MessageDecoder,
        config: SinkConfig | None = None,
        on_stage: StageHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SinkConfig()
        self.topics = topics
        self.counters = SinkCounters()
        self._bootstrap = bootstrap
        self._store = store
        self._decoder = decoder
        self._on_stage = on_stage
        self._clock = clock
        self._kinds: dict[str, TopicKind] = {
            topics.events: "events",
            topics.alerts: "alerts",
            topics.decisions: "decisions",
            topics.findings: "findings",
        }
        self._batcher = Batcher(
            max_rows=self.config.max_rows, max_delay_s=self.config.max_delay_s, clock=clock
        )
        self._dlq = DeadLetterProducer(connection(bootstrap), topics.deadletter)
        self._consumer: Consumer | None = None
        self._assigned: set[TopicPartitionKey] = set()
        self._lag: dict[TopicPartitionKey, int] = {}
        self._lag_sampled = 0.0
        self._needs_plans: set[TopicPartitionKey] = set()
        # Partition → last offset of a flush that was in flight when a writer stopped.
        self._suspect: dict[TopicPartitionKey, int] = {}
        self._paused = False
        self._pool: DecodePool | None = None
        self._own = {table: OwnRows(self.config.own_rows) for table in DEDUP_TABLES}
        # Runs of messages handed to the decoders, in the order they were read.
        self._pending: deque[tuple[str, int, list[int], list[bytes | None], Future[Encoded]]]
        self._pending = deque()
        self._pending_messages = 0
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()  # set once the schema is in place and consuming

    # -- lifecycle ------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """True while consumption is paused because the store does not acknowledge."""
        return self._paused

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages between the writer's position and the end of each assigned partition (as
        of the last fetch), sampled by the writer's own thread every ``LAG_SAMPLE_S``: its
        consumer lag, for /metrics (other threads must not call the consumer: a call that
        waits for a rebalance the writer's thread serves would hold them up)."""
        return dict(self._lag)

    def _sample_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._lag_sampled < LAG_SAMPLE_S:
            return
        self._lag_sampled = now
        lag: dict[tuple[str, int], int] = {}
        keys = [TopicPartition(t, p) for t, p in self._assigned]
        try:
            for tp in consumer.position(keys) if keys else []:
                if tp.offset < 0:
                    continue
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0:
                    lag[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        except KafkaException as exc:  # a metric must not stop the writer
            log.debug("consumer lag not sampled: %s", exc)
            return
        self._lag = lag

    @property
    def buffered_rows(self) -> int:
        return self._batcher.rows

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run_guarded, name="clickhouse-sink", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("the ClickHouse writer did not stop within %.0f s", timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_guarded(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            self.error = exc
            log.critical("the ClickHouse writer stopped on an error: %s", exc, exc_info=exc)

    def run(self) -> None:
        if not self._wait_for_schema():
            return
        self._pool = DecodePool(
            self.config.decoders, column_types(self._store), self._decoder, self._decoder.catalog
        )
        consumer = Consumer(self.config.consumer_config(self._bootstrap))
        self._consumer = consumer
        consumer.subscribe(
            list(self._kinds),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        self.ready.set()
        log.info(
            "ClickHouse writer consuming %s as group %s into %s",
            ", ".join(self._kinds),
            self.config.group_id,
            self._store.redacted_dsn,
        )
        try:
            while not self._stop.is_set():
                self._step()
            self._drain()
        except _Abandoned:
            log.warning("stopping with buffered rows uncommitted; they are re-read on restart")
        finally:
            self._consumer = None
            consumer.close()
            self._dlq.close()
            self._pool.close()

    def _wait_for_schema(self) -> bool:
        backoff = self._backoff()
        while not self._stop.is_set():
            try:
                migrate(self._store, self.config.schema)
                return True
            except StoreError as exc:
                if not exc.retryable:
                    raise
                self.counters.retries += 1
                delay = backoff.next_delay()
                log.warning("ClickHouse not ready (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
        return False

    def _backoff(self) -> Backoff:
        return Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)

    # -- the loop -------------------------------------------------------------------

    def _step(self) -> None:
        if self._needs_plans and not self._load_plans():
            self._wait(self.config.backoff_initial_s)
            return
        # While a batch fills, return as soon as the queue is drained (consume otherwise waits
        # for a full `room` of messages); when idle, wait a little longer per call.
        read = self._poll(0.005 if self._batcher.messages or self._pending else 0.2)
        if self._consumer is not None:
            self._sample_lag(self._consumer)
        self._collect(block=self._pending_messages >= self.config.max_pending_messages)
        # Caught up (nothing read, nothing decoding) with a good part of a batch: write it now
        # rather than when it is max_delay_s old (the end of a burst, a backlog read). While
        # the decoders are still at work, wait for a whole batch: an insert costs ClickHouse
        # ~40 ms of CPU whatever its size (the table's part and each view's), so inserting
        # what is decoded early, in smaller pieces, takes the cores from the decoders.
        caught_up = not read and not self._pending
        if self._batcher.due() or (caught_up and self._batcher.rows >= self.config.idle_rows):
            flush = self._batcher.take()
            if flush is not None:
                self._write(flush)

    def _drain(self) -> None:
        """On stop: write what is buffered if the store answers within the deadline."""
        self._check_stop()
        while self._pending or self._batcher.messages:
            self._collect(block=True)
            flush = self._batcher.take()
            if flush is not None:
                self._write(flush)

    def _check_stop(self) -> None:
        """Once stop is requested, the store has ``stop_flush_timeout_s`` to answer."""
        if not self._stop.is_set():
            return
        if self._stop_deadline is None:
            self._stop_deadline = self._clock() + self.config.stop_flush_timeout_s
        if self._clock() > self._stop_deadline:
            raise _Abandoned

    def _poll(self, timeout_s: float) -> int:
        """Read messages and hand them to the decoders in runs of one partition; returns how
        many were read."""
        consumer = self._consumer
        assert consumer is not None
        room = max(
            1,
            min(self.config.poll_batch, self.config.max_pending_messages - self._pending_messages),
        )
        runs: dict[tuple[str, int], tuple[list[int], list[bytes | None]]] = {}
        for message in consumer.consume(room, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                continue
            topic = message.topic()
            partition = message.partition()
            offset = message.offset()
            assert topic is not None and partition is not None and offset is not None
            run = runs.get((topic, partition))
            if run is None:
                run = runs[(topic, partition)] = ([], [])
            run[0].append(offset)
            run[1].append(message.value())
        if not runs:
            return 0
        if self.counters.first_message_at is None:
            self.counters.first_message_at = time.monotonic()
        assert self._pool is not None
        size = self.config.run_messages
        for (topic, partition), (offsets, values) in runs.items():
            kind = self._kinds[topic]
            for i in range(0, len(offsets), size):
                part = values[i : i + size]
                future = self._pool.submit(kind, part)
                self._pending.append((topic, partition, offsets[i : i + size], part, future))
                self._pending_messages += len(part)
                self.counters.messages += len(part)
        self.counters.decoder_restarts = self._pool.restarts
        return sum(len(offsets) for offsets, _values in runs.values())

    def _collect(self, *, block: bool) -> None:
        """Move decoded runs, in the order they were read, into the batch — those ready, or
        (``block``) until the batch is full or nothing is pending."""
        while self._pending and self._batcher.rows < self.config.max_rows:
            topic, partition, offsets, values, future = self._pending[0]
            if not (block or future.done()):
                return
            try:
                encoded = future.result()
            except Exception as exc:  # a decoder process died, or a fault in encoding
                encoded = self._isolate(topic, partition, offsets, values, exc)
            self._pending.popleft()
            self._pending_messages -= len(offsets)
            self.counters.invalid_events += encoded.invalid_events
            self.counters.tombstones += encoded.tombstones
            for index, reason in encoded.invalid:
                # The streams dead-letter these; the writer says why it skips them.
                log.info(
                    "%s[%d]@%d: invalid event skipped (dead-lettered by the streams): %s",
                    topic,
                    partition,
                    offsets[index],
                    reason,
                )
                self.counters.recent_invalid.append((topic, partition, offsets[index], reason))
            self._batcher.add(Consumed(topic, partition, offsets, values, encoded))

    def _isolate(
        self,
        topic: str,
        partition: int,
        offsets: list[int],
        values: list[bytes | None],
        fault: BaseException,
    ) -> Encoded:
        """A run whose encoding failed (a decoder process died, or a bug): encode its
        messages one at a time, each up to ``decode_attempts`` times, restarting the decoder
        processes when they died. A message that still fails is rejected (dead-lettered) and
        its value dropped from the run, so that the row path never decodes it again."""
        assert self._pool is not None
        log.error(
            "decoding %s[%d]@%d-%d failed (%s: %s): decoding its messages one by one",
            topic,
            partition,
            offsets[0],
            offsets[-1],
            type(fault).__name__,
            fault,
        )
        self.counters.isolated_runs += 1
        kind = self._kinds[topic]
        pool = self._pool
        if pool.broken:
            pool.restart()
        # All at once first (a process killed from outside: they all go through now) …
        futures = [pool.submit(kind, [value]) for value in values]
        parts: list[Encoded | None] = []
        for future in futures:
            try:
                parts.append(future.result())
            except Exception:
                parts.append(None)
        # … then each that failed alone, so that a message that kills its process is known.
        for index, value in enumerate(values):
            if parts[index] is not None:
                continue
            error: BaseException = fault
            for _attempt in range(self.config.decode_attempts):
                if pool.broken:
                    pool.restart()
                try:
                    parts[index] = pool.submit(kind, [value]).result()
                    break
                except Exception as exc:
                    error = exc
            else:
                reason = (
                    f"the sink failed to decode this message {self.config.decode_attempts} "
                    f"times ({type(error).__name__}: {error}); skipped"
                )
                log.critical("%s[%d]@%d: %s", topic, partition, offsets[index], reason)
                parts[index] = rejected(value, reason)
                values[index] = None  # not decoded again (the row path); its reject stays
        if self._pool.broken:
            self._pool.restart()
        self.counters.decoder_restarts = self._pool.restarts
        return merge([p for p in parts if p is not None])

    def _wait(self, seconds: float) -> None:
        """Wait while keeping the group membership alive (poll serves the callbacks)."""
        deadline = self._clock() + seconds
        while (remaining := deadline - self._clock()) > 0:
            self._check_stop()
            self._poll(min(0.2, remaining))

    # -- rebalance ------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned |= keys
        self._needs_plans |= keys
        consumer.assign(partitions)
        # No message of these partitions is read before their plans are known.
        consumer.pause(partitions)
        log.info("assigned %d partition(s)", len(keys))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= keys
        self._needs_plans -= keys
        for key in keys:
            self._suspect.pop(key, None)
        self._batcher.revoke(keys)
        kept = [p for p in self._pending if (p[0], p[1]) not in keys]
        self._pending = deque(kept)
        self._pending_messages = sum(len(p[2]) for p in kept)
        log.info("revoked %d partition(s)", len(keys))

    def _load_plans(self) -> bool:
        """Find the flushes that were in flight when a writer of this group stopped: a plan
        whose range the group's committed offset has not passed."""
        consumer = self._consumer
        assert consumer is not None
        keys = set(self._needs_plans)
        try:
            plans = load_plans(self._store, self.config.group_id, keys)
            committed = consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=10)
        except StoreError as exc:
            if not exc.retryable:
                raise
            log.warning("cannot read the writer's plans yet: %s", exc)
            return False
        except KafkaException as exc:
            log.warning("cannot read committed offsets yet: %s", exc)
            return False
        offsets = {(tp.topic, tp.partition): tp.offset for tp in committed}
        for plan in plans:
            key = (plan.topic, plan.partition)
            if offsets.get(key, OFFSET_INVALID) <= plan.end_offset:
                self._suspect[key] = plan.end_offset
                log.info(
                    "%s[%d]@%d-%d was being written when a writer stopped; its rollups "
                    "will be reconciled",
                    plan.topic,
                    plan.partition,
                    plan.start_offset,
                    plan.end_offset,
                )
        self._needs_plans -= keys
        ready = [TopicPartition(t, p) for t, p in keys if (t, p) in self._assigned]
        if ready and not self._paused:
            consumer.resume(ready)
        return True

    def _pause_all(self) -> None:
        consumer = self._consumer
        if consumer is None or self._paused:
            return
        consumer.pause(consumer.assignment())
        self._paused = True
        self.counters.pauses += 1
        log.warning("ClickHouse is not acknowledging: consumption paused")

    def _resume_all(self) -> None:
        consumer = self._consumer
        if consumer is None or not self._paused:
            return
        ready = [
            tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in self._needs_plans
        ]
        if ready:
            consumer.resume(ready)
        self._paused = False
        log.info("ClickHouse acknowledges again: consumption resumed")

    # -- one flush ------------------------------------------------------------------

    def _stage(self, stage: str, flush: Flush) -> None:
        if self._on_stage is not None:
            self._on_stage(stage, flush)

    def _write(self, flush: Flush) -> None:
        log.debug(
            "flush: %s",
            ", ".join(f"{s.topic}[{s.partition}]@{s.start}-{s.end}" for s in flush.slices),
        )
        flush.reconcile = any(
            s.key in self._suspect and s.start <= self._suspect[s.key] for s in flush.slices
        )
        backoff = self._backoff()
        started = time.monotonic()
        answered = 0  # failed attempts in a row on which ClickHouse answered with an error
        while True:
            self._check_stop()
            revoked = {s.key for s in flush.slices} - self._assigned
            if revoked:
                flush = flush.without(revoked)
                if not flush.slices:
                    return
            try:
                self._prepare(flush)
                letters = self._insert(flush)
                self._stage("inserted", flush)
                if flush.reconcile:
                    self._reconcile(flush)
                self._dlq.send_all(letters)
                self._commit(flush)
                self._stage("committed", flush)
            except SinkError as exc:
                if not exc.retryable:
                    raise
                # The attempt may have been applied in part: look up and reconcile next time.
                flush.reconcile = True
                self.counters.retries += 1
                answered = answered + 1 if isinstance(exc, StoreError) and exc.code else 0
                if flush.stuck:
                    flush.stuck_budget = min(2 * flush.stuck_budget, _MAX_STUCK_BUDGET)
                if answered >= self.config.stuck_attempts and not flush.stuck:
                    # ClickHouse is up but keeps refusing: maybe one row it cannot take with
                    # an error that is not a plain rejection. Insert row by row from now on.
                    log.error(
                        "ClickHouse failed %d attempts of a flush of %d rows (%s): inserting "
                        "it row by row to find rows that cannot be stored",
                        answered,
                        flush.rows,
                        exc,
                    )
                    flush.stuck = True
                delay = backoff.next_delay()
                log.warning(
                    "flush of %d rows not acknowledged (%s); retrying in %.1f s",
                    flush.rows,
                    exc,
                    delay,
                )
                self._pause_all()
                self._wait(delay)
                continue
            self.counters.flushes += 1
            self.counters.flush_latency.observe(time.monotonic() - started)
            self.counters.dead_lettered += len(letters)
            for piece in flush.slices:
                if self._suspect.get(piece.key, -1) <= piece.end:
                    self._suspect.pop(piece.key, None)
            self._resume_all()
            return

    def _prepare(self, flush: Flush) -> None:
        self._lookup(flush)
        write_plans(self._store, self.config.group_id, flush.plans())
        self._stage("planned", flush)

    def _lookup(self, flush: Flush, *, again: bool = False) -> None:
        """Which of the flush's event ids are already stored (or repeated in it): left out.
        ``again``: after a refused insert — what it stored is this writer's, not duplicates."""
        existing: set[str] = set()
        keyed_total = 0
        unique: set[str] = set()
        for table in DEDUP_TABLES:
            ids, stamps = flush.keyed_event_ids(table)
            if ids:
                own = self._own[table]
                existing |= existing_event_ids(self._store, table, ids, stamps, own=own)
                self.counters.lookups_in_memory = sum(o.settled for o in self._own.values())
                keyed_total += len(ids)
                unique.update(ids)
        flush.skipped_event_ids = frozenset(existing)
        # Every occurrence but the first of a new id, and every occurrence of a stored one.
        skipped = keyed_total - len(unique - existing)
        flush.repeats = keyed_total != len(unique)
        if again:
            return
        self.counters.duplicates_skipped += skipped
        if skipped:
            log.info(
                "%d event(s) already stored or repeated in the batch: not counted again", skipped
            )

    def _decode_rows(self, flush: Flush) -> None:
        """Decode the flush again, here, into rows (the row path)."""
        if not flush.decoded:
            assert self._pool is not None
            pool = self._pool
            flush.decode(lambda topic, values: pool.decode_here(self._kinds[topic], values))

    def _reconcile(self, flush: Flush) -> None:
        self._decode_rows(flush)
        keys: set[RollupKey] = set()
        outcome_tasks: set[str] = set()
        for _, item in flush.items():
            if item.table == TOKEN_EVENTS and item.ts is not None:
                row = item.row
                hour = item.ts.replace(minute=0, second=0, microsecond=0)
                keys.add((hour, row[_TEAM], row[_WORKFLOW], row[_MODEL]))
            elif item.table == TASK_OUTCOMES:
                outcome_tasks.add(item.row[_OUTCOME_TASK])
        rows = reconcile(
            self._store,
            keys,
            outcome_tasks=outcome_tasks,
            ttl_days=self.config.schema.ttl_days,
        )
        self.counters.reconciled_flushes += 1
        self.counters.reconciled_rows += rows
        self._stage("reconciled", flush)

    def _insert(self, flush: Flush) -> list[DeadLetter]:
        letters = [
            DeadLetter(
                r.reason,
                r.payload,
                topic,
                partition,
                offset,
                r.event_id,
                raw_is="message" if r.whole else "item",
                index=r.index,
            )
            for (topic, partition, offset), r in flush.rejects()
        ]
        by_table: dict[str, list[tuple[Origin, Item]]] | None = None
        stuck: list[tuple[Origin, Item, StoreError]] = []
        for table in flush.tables():
            if flush.stuck:
                pass  # row by row (below)
            elif not (table in DEDUP_TABLES and (flush.skipped_event_ids or flush.repeats)):
                body = flush.native(table)
                if body is not None:
                    if self._insert_native(table, body, content_token(table, flush)):
                        count = flush.rows_of(table)
                        if table in DEDUP_TABLES:
                            self._remember(flush, table, count)
                        self.counters.rows_inserted[table] = (
                            self.counters.rows_inserted.get(table, 0) + count
                        )
                        continue
                    if table in DEDUP_TABLES:
                        # An insert of several blocks can store some before ClickHouse refuses
                        # one: look again, and repair the rollups once the rows are in.
                        flush.reconcile = True
                        self._lookup(flush, again=True)
                        by_table = None
            # The row path: rows to leave out, or data ClickHouse (or a column) refused.
            token = content_token(table, flush)
            if by_table is None:
                if not flush.decoded:
                    self.counters.row_path_flushes += 1
                    self._decode_rows(flush)
                by_table = flush.rows_by_table()
            pairs = by_table.get(table, [])
            failing: list[tuple[Origin, Item, StoreError]] | None = [] if flush.stuck else None
            rejected = self._insert_bisect(
                table, pairs, token, failing, _Budget(flush.stuck_budget)
            )
            inserted = len(pairs) - len(rejected) - len(failing or [])
            if failing and not inserted:
                # Nothing of this table goes in: the table is failing, not some row. Back off.
                raise failing[0][2]
            stuck.extend(failing or [])
            self.counters.rows_inserted[table] = (
                self.counters.rows_inserted.get(table, 0) + inserted
            )
            letters.extend(
                _dead_letter(origin, item, reason, table) for origin, item, reason in rejected
            )
        if stuck:
            stuck = self._not_stored(stuck)
            for (topic, partition, offset), item, error in stuck:
                reason = (
                    f"ClickHouse failed to store this row on every attempt while it stored "
                    f"other rows of its table; skipped: {error}"
                )
                log.critical(
                    "%s[%d]@%d event_id=%s: %s", topic, partition, offset, item.event_id, reason
                )
                letters.append(_dead_letter((topic, partition, offset), item, reason, item.table))
            self.counters.stuck_rows += len(stuck)
        return letters

    def _remember(self, flush: Flush, table: str, count: int) -> None:
        """The rows of ``table`` a native insert of ``flush`` just stored (every row of the
        flush: none left out, none repeated), for the next lookups."""
        ids, stamps = flush.keyed_event_ids(table)
        if len(ids) == count and not flush.skipped_event_ids and not flush.repeats:
            self._own[table].add(ids, stamps)

    def _not_stored(
        self, stuck: list[tuple[Origin, Item, StoreError]]
    ) -> list[tuple[Origin, Item, StoreError]]:
        """The failing rows that are not in their table after all (an insert into a table
        and its views is not atomic: a view can fail after the row was written; such a
        row stays, and the flush's reconciliation repairs the rollups)."""
        found: set[str] = set()
        for table in DEDUP_TABLES:
            keyed = [(i.event_id, i.ts) for _, i, _ in stuck if i.table == table and i.ts]
            ids = [event_id for event_id, _ in keyed if event_id is not None]
            if ids:
                stamps = [epoch_ms(ts) for event_id, ts in keyed if event_id is not None and ts]
                found |= existing_event_ids(self._store, table, ids, stamps)
        if found:
            log.warning(
                "%d row(s) ClickHouse failed on were stored anyway (a view failed): kept",
                len(found),
            )
        return [entry for entry in stuck if entry[1].event_id not in found]

    def _insert_native(self, table: str, body: bytes, token: str) -> bool:
        """Insert the flush's Native blocks; False when ClickHouse refused the data (nothing
        of it is stored; the row path then finds the refused rows)."""
        try:
            self._store.insert_native(table, body, columns=COLUMNS[table], token=token)
            return True
        except StoreError as exc:
            if exc.retryable:
                raise
            log.warning("ClickHouse refused a batch for %s (%s): finding the rows", table, exc)
            return False

    def _insert_bisect(
        self,
        table: str,
        pairs: list[tuple[Origin, Item]],
        token: str,
        failing: list[tuple[Origin, Item, StoreError]] | None = None,
        budget: _Budget | None = None,
    ) -> list[tuple[Origin, Item, str]]:
        """Insert; when ClickHouse rejects the data, split until the rejected rows are found.
        The token follows the rows (the flush's, then ``/0``, ``/1`` for each half), so a
        retry of the same rows is a no-op. With ``failing`` (a stuck flush), an error
        ClickHouse answers that is not a rejection is split on too, and the single rows it
        hits are added to ``failing`` instead of being raised — until ``budget.rows`` of them
        failed with nothing of the table stored: then the table is failing (a whole table
        refusing every row would otherwise cost two inserts per row) and the error is raised."""
        if not pairs:
            return []
        try:
            self._store.insert(
                table, [i.row for _, i in pairs], columns=COLUMNS[table], token=token
            )
            if budget is not None:
                budget.stored += len(pairs)
            return []
        except StoreError as exc:
            answered = failing is not None and exc.code is not None
            if exc.retryable and not answered:
                raise
            if len(pairs) == 1:
                origin, item = pairs[0]
                if exc.retryable and failing is not None:
                    failing.append((origin, item, exc))
                    if budget is not None and not budget.stored and len(failing) >= budget.rows:
                        raise
                    return []
                return [(origin, item, str(exc))]
        middle = len(pairs) // 2
        return self._insert_bisect(
            table, pairs[:middle], f"{token}/0", failing, budget
        ) + self._insert_bisect(table, pairs[middle:], f"{token}/1", failing, budget)

    def _commit(self, flush: Flush) -> None:
        consumer = self._consumer
        assert consumer is not None
        offsets = [
            TopicPartition(t, p, o)
            for t, p, o in flush.commit_offsets()
            if (t, p) in self._assigned
        ]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The rows are in; whoever reads these offsets again rebuilds this flush from its
            # plan (same token) or finds its event ids stored: nothing counts twice.
            self.counters.commit_failures += 1
            log.warning(
                "offset commit failed (%s); the flush will be re-read and deduplicated", exc
            )


def _dead_letter(origin: Origin, item: Item, reason: str, table: str) -> DeadLetter:
    """The dead letter of one row ClickHouse would not store (``origin``: its message)."""
    topic, partition, offset = origin
    return DeadLetter(
        reason,
        item.payload(),
        topic,
        partition,
        offset,
        item.event_id,
        table,
        raw_is="item" if item.raw is None else "message",
    )
