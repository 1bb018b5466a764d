"""The debt role on the worker's Faust app: two stages, so the findings do not depend on how
many workers run.

**Stage 1** (agent ``tokengov-debt`` on ``ctx.topics.events``, raw bytes, single events and batch
envelopes through the one decoder, :func:`tokengov.core.decoding.decode_events`) keeps one
:class:`~tokengov.streams.debt.engine.DebtTallies` per events partition it holds (duplicates
by ``event_id`` count once). Every ``debt.flush_interval`` it publishes the tallies of each
workflow that changed, per partition, on ``<prefix>tokengov.streams.debt-tallies`` (key
``<workflow>|p<partition>``, compacted, in the workflow's partition of that topic:
:func:`tokengov.streams.debt.wire.judge_partition`).

**Stage 2** (agent ``tokengov-debt-judge`` on that topic) holds the latest share of every
partition for the workflows of its partitions, in a
:class:`~tokengov.streams.debt.engine.DebtJudge`, and on the same timer judges them and
publishes each finding as its JSON (key = workflow) on ``ctx.topics.findings`` and each
alert (key = team) on ``ctx.topics.alerts``.

Exactly once across rebalances: the topic is compacted, so a worker that takes a partition of
it over reads it to its end and holds exactly the latest shares (the records before that end,
delivered again by the stream, are skipped). A worker that gives an events partition up
publishes its tallies and then the partition's whole stage-1 state (a *handover*: open tasks,
closed buckets, the event ids seen, read up to which offset) before the group moves on; the
next owner restores it when it resumes at or before that offset (the events it reads again
are duplicates by ``event_id``), else (the previous owner died) it starts from the stored
history of the horizon (``ctx.debt_history``, the events of its partition) and what arrives.
Undecodable messages are the streams role's to dead-letter; here they are counted and logged,
never judged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, TopicPartition

from tokengov.core.calls import Call, Done, from_model
from tokengov.core.decoding import Decoded, decode_events
from tokengov.core.kafka import connection, read_to_end
from tokengov.core.process_tuning import raise_gc_thresholds
from tokengov.core.worker_context import WorkerContext
from tokengov.streams.debt import wire
from tokengov.streams.debt.engine import (
    DebtJudge,
    DebtTallies,
    EngineStats,
    FlushResult,
)
from tokengov.streams.partition_stage import GC_THRESHOLDS, Stage1, commit_acked
from tokengov.streams.publisher import Publisher
from tokengov.streams.topics import StreamsTopics, ensure_streams_topics

__all__ = ["DebtRole", "register"]

log = logging.getLogger(__name__)

#: How often ``--role debt`` on its own commits what its agent has acked (:func:`register`).
COMMIT_INTERVAL_S = 0.1


@dataclass
class DebtRole:
    """What :func:`register` wired, for the worker and for tests."""

    ctx: WorkerContext
    names: StreamsTopics
    partitions: int  # of tokengov.events (and of the tallies topic)
    judge: DebtJudge
    publisher: Publisher
    group: str  # the consumer group (the Faust app id)
    tallies: dict[int, DebtTallies] = field(default_factory=dict)  # stage 1, by partition
    next_offset: dict[int, int] = field(default_factory=dict)  # stage 1: read up to, by partition
    assigned: set[int] = field(default_factory=set)  # events partitions held
    active: set[int] = field(default_factory=set)  # … whose state is checked since the assignment
    judged: set[int] = field(default_factory=set)  # tallies partitions held
    loaded_end: dict[int, int] = field(default_factory=dict)  # tallies partition → end at load
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    undecodable: int = 0
    failed: int = 0
    findings_sent: int = 0
    alerts_sent: int = 0
    shares_sent: int = 0
    handovers_restored: int = 0
    handovers_failed: int = 0
    loading: asyncio.Task[None] | None = None

    @property
    def stats(self) -> EngineStats:
        """Stage 1's counters, summed over the partitions held."""
        total = EngineStats()
        for tallies in self.tallies.values():
            for name, value in vars(tallies.stats).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    # ---------------------------------------------------------------- stage 1

    def _history_of(self, partition: int) -> list[Call | Done]:
        """The stored events of the horizon that belong to ``partition`` (keyed by task)."""
        events = (from_model(e) for e in self.ctx.debt_history)
        return [
            e
            for e in events
            if int(murmur2(e.task_id.encode()) & 0x7FFFFFFF) % self.partitions == partition
        ]

    async def partition(self, partition: int, offset: int) -> DebtTallies | None:
        """Stage 1 of ``partition`` as of its first message since the assignment (at
        ``offset``); None when the partition is not held (a message still in flight after a
        revocation: the next owner reads it again)."""
        if partition not in self.assigned:
            return None
        if partition not in self.active:
            taken, stored = self._load(partition, offset, await self._handover(partition))
            if stored:
                log.info(
                    "debt: partition %d: %d of %d stored events of the horizon replayed",
                    partition,
                    taken,
                    stored,
                )
        return self.tallies[partition]

    async def load_assigned(self) -> None:
        """Load every assigned partition not loaded yet, as of the group's committed offsets
        (so a partition with no new message is judged too, with its history)."""
        async with self.lock:
            todo = sorted(self.assigned - self.active)
            if not todo:
                return
            committed = await asyncio.to_thread(self._committed, todo)
            taken = stored = 0
            for p in todo:
                if p in self.assigned and p not in self.active:
                    t, s = self._load(p, committed[p], await self._handover(p))
                    taken, stored = taken + t, stored + s
            if stored:
                log.info(
                    "debt: %d of %d stored events of the horizon replayed into partitions %s",
                    taken,
                    stored,
                    todo,
                )

    def _committed(self, partitions: list[int]) -> dict[int, int]:
        """Where the group resumes on each of ``partitions`` (0 when it has no position)."""
        consumer = Consumer(
            {
                **connection(self.ctx.kafka).librdkafka_config(),
                "group.id": self.group,  # committed() only: never subscribes, never joins
                "enable.auto.commit": False,
            }
        )
        try:
            tps = [TopicPartition(self.ctx.topics.events, p) for p in partitions]
            return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(tps, timeout=30)}
        finally:
            consumer.close()

    async def _handover(self, partition: int) -> bytes | None:
        """The latest handover record of ``partition``, if any."""
        key = wire.handover_key(partition)
        records = await asyncio.to_thread(
            lambda: list(
                read_to_end(self.ctx.kafka, self.names.debt_tallies, [partition % self.partitions])
            )
        )
        found: bytes | None = None
        for record in records:
            if record.key == key:
                found = record.value
        return found

    def _load(self, partition: int, offset: int, handover: bytes | None) -> tuple[int, int]:
        """Make ``partition``'s stage 1 current as of ``offset`` (where reading resumes): the
        state kept through the rebalance, else the handover, else nothing; then the stored
        history. Returns (history events taken, history events of the partition)."""
        self.active.add(partition)
        held = self.tallies.get(partition)
        if held is not None and self.next_offset.get(partition, -1) >= offset:
            return 0, 0  # kept through the rebalance: still exact
        tallies = DebtTallies(self.ctx.policy)
        next_offset = -1
        if handover is not None:
            doc = orjson.loads(handover)
            if doc["next_offset"] >= offset:
                tallies.restore(doc)
                next_offset = doc["next_offset"]
                self.handovers_restored += 1
                log.info(
                    "debt: partition %d taken over at offset %d (handed over up to %d: %d open "
                    "tasks)",
                    partition,
                    offset,
                    next_offset,
                    tallies.open_tasks,
                )
            else:
                log.warning(
                    "debt: partition %d resumes at offset %d, past its handover (%d): the "
                    "previous owner did not hand it over; starting from the stored history",
                    partition,
                    offset,
                    doc["next_offset"],
                )
        history = self._history_of(partition)
        taken = tallies.observe_all(history)
        self.tallies[partition] = tallies
        self.next_offset[partition] = next_offset
        return taken, len(history)

    async def handle_event(self, message: Any) -> None:
        """One message of the events topic, decoded here (the debt role on its own)."""
        await self.handle_decoded(message, decode_events(message.value))

    async def handle_decoded(self, message: Any, decoded: Decoded) -> None:
        """One message of the events topic and its decoded events: from :meth:`handle_event`,
        or from the streams role's stage 1 when both run in one process (one decode)."""
        async with self.lock:
            tallies = await self.partition(message.partition, message.offset)
            if tallies is None:
                return
            if decoded.failures:
                self.undecodable += len(decoded.failures)
                log.debug(
                    "debt: %d undecodable item(s) skipped (dead-lettered by the streams role)",
                    len(decoded.failures),
                )
            failed = tallies.failed
            try:
                tallies.observe_all(map(itemgetter(1), decoded.events))
            except Exception:  # a bug must not stop the worker (the streams role governs)
                self.failed += 1
                log.exception("debt: the events at offset %d could not be observed", message.offset)
            self.failed += tallies.failed - failed
            self.next_offset[message.partition] = message.offset + 1

    def _publish_shares(self, partition: int, tallies: DebtTallies) -> None:
        failed = tallies.failed  # idle tasks closed by take can fail a detector too
        shares = tallies.take()
        self.failed += tallies.failed - failed
        for share in shares:
            self.publisher.send(
                self.names.debt_tallies,
                wire.share_key(share.workflow, partition),
                wire.encode_share(partition, share),
                partition=wire.judge_partition(share.workflow, self.partitions),
            )
            self.shares_sent += 1

    # ---------------------------------------------------------------- stage 2

    async def _load_judged(self, partition: int) -> None:
        records = await asyncio.to_thread(
            lambda: list(read_to_end(self.ctx.kafka, self.names.debt_tallies, [partition]))
        )
        latest: dict[bytes, bytes | None] = {}
        for record in records:
            if record.key is not None and not record.key.startswith(wire.HANDOVER_PREFIX):
                latest[record.key] = record.value
        for key, value in latest.items():
            self._apply_share(key, value)
        self.loaded_end[partition] = max((r.offset + 1 for r in records), default=0)
        log.info(
            "debt: judging partition %d: %d share(s) loaded up to offset %d",
            partition,
            len(latest),
            self.loaded_end[partition],
        )

    def _apply_share(self, key: bytes, value: bytes | None) -> None:
        workflow, _, source = key.decode().rpartition("|p")
        if value is None:
            self.judge.drop(int(source), workflow)
        else:
            partition, share = wire.decode_share(orjson.loads(value))
            self.judge.apply(partition, share)

    async def handle_share(self, message: Any) -> None:
        async with self.lock:
            q = message.partition
            if q not in self.judged:
                return  # revoked meanwhile
            if q not in self.loaded_end:
                await self._load_judged(q)
            if message.offset < self.loaded_end[q]:
                return  # already in what was loaded
            if message.key is None or message.key.startswith(wire.HANDOVER_PREFIX):
                return
            try:
                self._apply_share(message.key, message.value)
            except Exception:  # our own records: never expected; keep a record anyway
                self.failed += 1
                log.exception("debt: bad share at %s offset %d", message.topic, message.offset)

    # ---------------------------------------------------------------- the timer

    async def flush(self) -> None:
        """Publish the tallies, then judge. The deliveries are awaited outside the lock: in
        ``--role streams`` the governance stage hands every message to :meth:`handle_decoded`,
        which takes the lock, so a slow broker must not hold governance up here."""
        async with self.lock:
            for partition, tallies in self.tallies.items():
                self._publish_shares(partition, tallies)
        await self.publisher.delivered()
        async with self.lock:
            for q in self.judged - set(self.loaded_end):
                await self._load_judged(q)  # judged partitions with no new share yet
            result = self.judge.flush()
            self._publish_result(result)
        await self.publisher.delivered()

    def _publish_result(self, result: FlushResult) -> None:
        for finding in result.findings:
            self.publisher.send(
                self.ctx.topics.findings,
                finding.workflow.encode(),
                finding.model_dump_json().encode(),
            )
            self.findings_sent += 1
        for alert in result.alerts:
            self.publisher.alert(alert)
            self.alerts_sent += 1
        if result.findings or result.alerts:
            log.info(
                "debt: published %d finding(s), %d alert(s)",
                len(result.findings),
                len(result.alerts),
            )

    # ---------------------------------------------------------------- rebalances

    async def on_assigned(self, events: set[int], judged: set[int]) -> None:
        """A new assignment (after every revocation: the group rebalances eagerly). State of a
        partition held again is kept, and checked against its first message (:meth:`partition`)."""
        async with self.lock:
            self.assigned = set(events)
            self.active.clear()
            for p in [p for p in self.tallies if p not in events]:
                del self.tallies[p]
                self.next_offset.pop(p, None)
            self.judged = set(judged)
            for q in [q for q in self.loaded_end if q not in judged]:
                del self.loaded_end[q]
            self.judge.forget(lambda w: wire.judge_partition(w, self.partitions) in self.judged)
        self.loading = asyncio.get_running_loop().create_task(self.load_assigned())

    async def on_revoked(self, events: set[int]) -> None:
        """Hand the revoked events partitions over: their tallies, then their whole state."""
        async with self.lock:
            handed = []
            for p in sorted(events & self.assigned):
                self.assigned.discard(p)
                tallies = self.tallies.get(p)
                if tallies is None or self.next_offset.get(p, -1) < 0:
                    continue
                try:
                    self._publish_shares(p, tallies)
                    self.publisher.send(
                        self.names.debt_tallies,
                        wire.handover_key(p),
                        tallies.handover(self.next_offset[p]),
                        partition=p % self.partitions,
                    )
                except Exception as exc:  # e.g. larger than the broker takes: never stop here
                    self.handovers_failed += 1
                    log.error(
                        "debt: partition %d could not be handed over (%s); its next owner "
                        "starts it from the stored history",
                        p,
                        exc,
                    )
                    continue
                handed.append(p)
            if handed:
                try:
                    await self.publisher.delivered()
                except Exception as exc:
                    self.handovers_failed += len(handed)
                    log.error(
                        "debt: the handover of partitions %s was not delivered (%s); their next "
                        "owners start them from the stored history",
                        handed,
                        exc,
                    )
                    return
                log.info("debt: partitions %s handed over", handed)


def register(app: faust.App, ctx: WorkerContext, *, stage1: Stage1 | None = None) -> DebtRole:
    """The debt role on ``app``. With ``stage1`` (the streams role's, in the same process: what
    ``--role streams`` runs) stage 1 takes the events that stage decoded, once per message,
    instead of consuming and decoding the topic again in an agent of its own."""
    raise_gc_thresholds(*GC_THRESHOLDS)  # it keeps open tasks' calls: see GC_THRESHOLDS
    names, partitions = ensure_streams_topics(ctx.kafka, ctx.topics)
    role = DebtRole(
        ctx,
        names,
        partitions,
        DebtJudge(ctx.policy),
        Publisher(ctx.kafka, ctx.topics),
        app.conf.id,
    )
    events, shares = (
        app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        for name in (ctx.topics.events, names.debt_tallies)
    )

    async def consume(stream: Any) -> None:
        async for event in stream.events():
            await role.handle_event(event.message)

    async def judge(stream: Any) -> None:
        async for event in stream.events():
            await role.handle_share(event.message)

    if stage1 is None:
        app.agent(events, name="tokengov-debt")(consume)

        async def commit() -> None:
            await commit_acked(app)

        # Stage 1 keeps nothing that must be stored before its offsets are (a restart
        # rebuilds from the handover or the stored history), so what the agent has acked is
        # committed at once rather than at Faust's commit timer, up to a second later: a
        # restart replays less, and a caught-up worker shows it within ~0.1 s.
        app.timer(interval=COMMIT_INTERVAL_S, name="tokengov-debt-commit")(commit)
    else:  # the streams role's stage 1 decodes, and commits after its flush
        stage1.taps.append(role.handle_decoded)
    app.agent(shares, name="tokengov-debt-judge")(judge)

    async def publish() -> None:
        await role.flush()

    interval = ctx.policy.current.debt.flush_interval.total_seconds()
    app.timer(interval=interval, name="tokengov-debt-flush")(publish)

    def split(tps: Any) -> tuple[set[int], set[int]]:
        tps = tps or set()
        return (
            {tp.partition for tp in tps if tp.topic == ctx.topics.events},
            {tp.partition for tp in tps if tp.topic == names.debt_tallies},
        )

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        await role.on_assigned(*split(args[0] if args else kwargs.get("assigned")))

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        await role.on_revoked(split(args[0] if args else kwargs.get("revoked"))[0])

    async def on_shutdown(sender: Any, *args: Any, **kwargs: Any) -> None:
        # the consumer has stopped (a rebalance revokes nothing then): hand everything over
        await role.on_revoked(set(role.assigned))
        role.publisher.close()

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]  # mode's stub
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode's stub
    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]  # mode's stub
    role_handles = (consume, judge, publish, on_assigned, on_revoked, on_shutdown)
    log.info(
        "debt role: %s (%d partitions) → tallies %s → findings %s, alerts %s (%d handles)",
        ctx.topics.events,
        partitions,
        names.debt_tallies,
        ctx.topics.findings,
        ctx.topics.alerts,
        len(role_handles),
    )
    return role
