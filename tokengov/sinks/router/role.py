"""The router role of ``tokengov worker`` (``--role router``; part of ``all``).

``register(app, ctx)`` adds to the Faust app:

- an agent on ``ctx.topics.alerts`` that hands every message to the router (an
  invalid one is dead-lettered with the reason, topic, partition and offset);
- handlers of the group's rebalances: the router owns the alerts partitions it is assigned
  (:mod:`tokengov.sinks.router.ownership`), reads each one's state back from
  ``ctx.topics.router_state`` before it handles the partition's alerts or fires its timers,
  and on revocation stops the partition's timers and, unless it is assigned again, forgets it;
- a service that owns the router: the receivers, the ``notifications`` log in ClickHouse,
  the state topic's writer, the dead-letter producer, and a thread following
  ``ctx.topics.silences``.

Several routers run as one consumer group (the same app id), each delivering the alerts of
its partitions, so nothing is paged twice; one that dies is replaced by the others at the
next rebalance (the session times out after 6 s), and they resume its groups, notification
log and outbox from the state topic.

Faust acknowledges a message once the agent returns from it; by then the alert's group is
on the state topic, acknowledged by the broker, so an acknowledged alert is never lost.

**Why not Faust tables.** A table's changelog and recovery on assignment is the same idea,
but it does not fit here: (1) most writes come from the router's timers and delivery tasks,
outside stream iteration, where a table cannot tell which partition a key belongs to — the
group key carries no team, and a table would send it where its partitioner puts the key,
not to the partition of the alerts it describes; (2) table recovery reads up to the
high-water mark from ListOffsets, which Tansu answers with the last batch's base offset
(see :func:`tokengov.core.kafka.read_to_end`), so a recovery could end early; (3) the
project's workers let Faust declare no topic (``topic_allow_declare=False``), and the
state must outlive the embedded broker's memory (:mod:`tokengov.sinks.router.snapshot`).
So the state is written with an explicit partition by
:class:`~tokengov.sinks.router.state_topic.RouterStateTopic`, and read back to the end of
each partition with the core helpers, as the streams read their state topic back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import Any

import faust
import httpx
from mode import Service

from tokengov.core.contracts import utcnow
from tokengov.core.errors import BrokerError
from tokengov.core.kafka import CheckedProducer
from tokengov.core.policy import Policy
from tokengov.core.topics import partition_count
from tokengov.core.worker_context import WorkerContext
from tokengov.sinks.router.inhibit import BUILTIN_RULES, Inhibitor, rules_from_policy
from tokengov.sinks.router.kafka import KafkaAlertSink, KafkaDeadLetters, SilenceTopic
from tokengov.sinks.router.notification_log import (
    ClickHouseNotificationLog,
    MemoryNotificationLog,
    NotificationLog,
)
from tokengov.sinks.router.ownership import PartitionedDispatcher
from tokengov.sinks.router.receivers import build_receivers
from tokengov.sinks.router.router import Router
from tokengov.sinks.router.silences import Silence, SilenceStore
from tokengov.sinks.router.snapshot import LocalSnapshot
from tokengov.sinks.router.state import PartitionState
from tokengov.sinks.router.state_topic import RouterStateTopic
from tokengov.sinks.router.tree import RouteTree

__all__ = ["RouterRuntime", "inhibitor_for", "register"]

log = logging.getLogger(__name__)


def inhibitor_for(policy: Policy) -> Inhibitor:
    return Inhibitor([*BUILTIN_RULES, *rules_from_policy(policy.inhibit_rules)])


#: Seconds a router giving partitions up waits for their deliveries under way (well within
#: the 6 s the group gives a member to rejoin).
DRAIN_S = 3.0

#: Seconds between attempts to read a partition's state back, or to persist state, while
#: the broker does not answer.
RETRY_S = 2.0


class RouterRuntime:
    """Builds, starts and stops everything the router needs, from a worker context, and
    follows the alerts partitions the worker is assigned."""

    def __init__(
        self, ctx: WorkerContext, *, notification_log: NotificationLog | None = None
    ) -> None:
        self.ctx = ctx
        self._notification_log = notification_log
        self.router: Router | None = None
        self.dispatcher: PartitionedDispatcher | None = None
        self.state_topic: RouterStateTopic | None = None
        self.ready = asyncio.Event()
        self.assigned: set[int] = set()
        self._loaded: dict[int, asyncio.Event] = {}
        self._loading: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._snapshot: LocalSnapshot | None = None
        self._publisher: CheckedProducer | None = None
        self._stop_follow = threading.Event()
        self._follower: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open_log(self) -> NotificationLog:
        if self._notification_log is not None:
            return self._notification_log
        dsn = self.ctx.settings.clickhouse_dsn
        try:
            return ClickHouseNotificationLog.from_dsn(dsn)
        except Exception as exc:
            log.error(
                "cannot open ClickHouse for the notifications log (%s): delivery attempts are "
                "kept in memory only and logged",
                type(exc).__name__,
            )
            return MemoryNotificationLog()

    def _partitions(self) -> int:
        """The alerts topic's partition count, which the state topic must share."""
        kafka, topics = self.ctx.kafka, self.ctx.topics
        alerts = partition_count(kafka, topics.alerts)
        states = partition_count(kafka, topics.router_state)
        if alerts != states:
            raise BrokerError(
                f"refusing to start the router: {topics.router_state} has {states} partitions "
                f"but {topics.alerts} has {alerts}; the state of alerts partition p lives in "
                f"partition p, so they must match (add partitions to {topics.router_state})"
            )
        return alerts

    async def start(self) -> Router:
        self._loop = asyncio.get_running_loop()
        policy = self.ctx.policy.current
        settings = self.ctx.settings
        partitions = await asyncio.to_thread(self._partitions)
        if settings.router_snapshot:
            self._snapshot = LocalSnapshot.in_data_dir(settings.data_dir)
        silences = SilenceStore(self._snapshot.load_silences() if self._snapshot else [])
        self.state_topic = RouterStateTopic(
            self.ctx.kafka, self.ctx.topics.router_state, snapshot=self._snapshot
        )
        self.dispatcher = PartitionedDispatcher(
            RouteTree.from_policy(policy),
            partitions=partitions,
            inhibitor_factory=lambda: inhibitor_for(policy),
            silences=silences,
        )
        self._client = httpx.AsyncClient(follow_redirects=False)
        self._publisher = CheckedProducer(self.ctx.kafka, client_id="tokengov-router")
        self.router = Router(
            self.dispatcher,
            self._receivers(policy),
            notification_log=self._open_log(),
            dead_letters=KafkaDeadLetters(self._publisher, self.ctx.topics.deadletter),
            alert_sink=KafkaAlertSink(self._publisher, self.ctx.topics.alerts),
            persist=self.persist,  # a notification's outbox record is stored before it goes
        )
        await self.router.start()
        self._follower = threading.Thread(
            target=self._follow_silences, args=(silences,), name="tokengov-silences", daemon=True
        )
        self._follower.start()
        self.ctx.policy.subscribe(self._on_policy)
        self.ready.set()
        log.info(
            "alert router started (%d receivers, state on %s%s)",
            len(policy.receivers),
            self.ctx.topics.router_state,
            f", local copy {self._snapshot.path}" if self._snapshot else "",
        )
        return self.router

    # ------------------------------------------------------------- partitions

    async def on_revoked(self, partitions: set[int]) -> None:
        """Stop the timers of ``partitions``, give their deliveries under way up to
        :data:`DRAIN_S` to end, and make what they wrote durable: the next owner reads it
        back (and does not send again what was delivered here meanwhile)."""
        if self.dispatcher is not None:
            self.dispatcher.suspend(partitions)
            await self._drain(self.dispatcher, partitions)
        if self._loading is not None:
            self._loading.cancel()
        if self.state_topic is not None:
            await self._persist()

    async def _drain(self, dispatcher: PartitionedDispatcher, partitions: set[int]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_S
        while (left := dispatcher.in_flight(partitions)) and loop.time() < deadline:
            dispatcher.outcome.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await dispatcher.outcome.wait()
        if left:
            log.warning(
                "giving partitions %s up with %d notification(s) still being delivered: "
                "their next owner may deliver them again (same notification id)",
                sorted(partitions),
                left,
            )

    async def on_assigned(self, partitions: set[int]) -> None:
        """The new assignment: forget the partitions not in it, read back the new ones (in a
        task: the agent waits for its partition, the timers start once it is read)."""
        self.assigned = set(partitions)
        for partition in list(self._loaded):
            if partition not in partitions:
                del self._loaded[partition]
        if self._loading is not None:
            self._loading.cancel()
        self._loading = asyncio.create_task(self._take_over(), name="tokengov-router-takeover")

    async def _take_over(self) -> None:
        await self.ready.wait()
        assert self.dispatcher is not None and self.state_topic is not None
        assert self.router is not None
        new = self.dispatcher.keep_only(self.assigned)
        for partition in self.assigned - new:
            self._loaded.setdefault(partition, asyncio.Event()).set()
        if not new:
            return
        for partition in new:
            self._loaded.setdefault(partition, asyncio.Event())
        while True:
            try:
                records = await asyncio.to_thread(self.state_topic.read, new)
                break
            except BrokerError as exc:
                log.error(
                    "cannot read the router state of partitions %s back (%s); retrying in %gs",
                    sorted(new),
                    exc,
                    RETRY_S,
                )
                await asyncio.sleep(RETRY_S)
        for partition in sorted(new):
            state = PartitionState.from_records(partition, self.state_topic, records[partition])
            await self.router.resume(self.dispatcher.add(partition, state))
            self._loaded[partition].set()

    async def owned(self, partition: int) -> None:
        """Wait until ``partition``'s state is read back."""
        await self._loaded.setdefault(partition, asyncio.Event()).wait()

    async def _persist(self) -> None:
        assert self.state_topic is not None
        while True:
            try:
                await asyncio.to_thread(self.state_topic.persist)
                return
            except BrokerError as exc:
                log.error(
                    "router state not persisted (%s); writing every owned partition's state "
                    "again in %gs",
                    exc,
                    RETRY_S,
                )
                await asyncio.sleep(RETRY_S)
                self._rewrite()

    def _rewrite(self) -> None:
        """Records the broker did not take are gone from the producer: write them all again."""
        if self.dispatcher is None:
            return
        for partition, shard in self.dispatcher.shards.items():
            if isinstance(shard.state, PartitionState):
                count = shard.state.rewrite()
                log.warning(
                    "router state of partition %d written again (%d records)", partition, count
                )

    async def persist(self) -> None:
        """Wait until every state change so far is on the broker."""
        await self._persist()

    # ---------------------------------------------------------------- policy

    def _receivers(self, policy: Policy) -> dict[str, Any]:
        assert self._client is not None
        return dict(
            build_receivers(
                policy,
                client=self._client,
                env=os.environ,
                grafana_url=self.ctx.settings.grafana_url,
            )
        )

    def _on_policy(self, policy: Policy) -> None:
        if self._loop is None or self.router is None:
            return

        def apply() -> None:
            assert self.router is not None and self.dispatcher is not None
            self.dispatcher.set_tree(RouteTree.from_policy(policy), lambda: inhibitor_for(policy))
            self.router.set_receivers(self._receivers(policy))
            log.warning("router: new routing tree and receivers in force")

        self._loop.call_soon_threadsafe(apply)

    def _follow_silences(self, store: SilenceStore) -> None:
        snapshot = self._snapshot
        topic = SilenceTopic(self.ctx.kafka, self.ctx.topics.silences)

        def on_silence(silence: Silence) -> None:
            if store.apply(silence):
                if snapshot is not None:
                    snapshot.save_silence(silence)
                log.info(
                    "silence %s (%s) by %s: %s",
                    silence.silence_id,
                    ", ".join(silence.matchers),
                    silence.created_by,
                    silence.state(utcnow()),
                )

        def on_caught_up(seen: set[str]) -> None:
            # The embedded broker keeps topics in memory: put back what it forgot.
            now = utcnow()
            for silence in store.all():
                if silence.silence_id not in seen and silence.state(now) != "expired":
                    log.warning(
                        "republishing silence %s, missing from %s", silence.silence_id, topic.topic
                    )
                    try:
                        topic.publish(silence)
                    except BrokerError as exc:
                        log.error("could not republish silence %s: %s", silence.silence_id, exc)

        while not self._stop_follow.is_set():
            try:
                topic.follow(on_silence, self._stop_follow, on_caught_up=on_caught_up)
            except BrokerError as exc:
                log.error("silences: %s; retrying in 5s", exc)
                self._stop_follow.wait(5.0)

    async def stop(self) -> None:
        self._stop_follow.set()
        if self._loading is not None:
            self._loading.cancel()
        if self.router is not None:
            await self.router.stop()
            self.router.close()
        if self._follower is not None:
            await asyncio.to_thread(self._follower.join, 5.0)
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.flush, 5.0)
        if self.state_topic is not None:
            await asyncio.to_thread(self.state_topic.close, 5.0)
        if self._client is not None:
            await self._client.aclose()
        if self._snapshot is not None:
            self._snapshot.close()


def _alert_partitions(tps: Any, topic: str) -> set[int]:
    return {tp.partition for tp in (tps or ()) if tp.topic == topic}


def register(
    app: faust.App, ctx: WorkerContext, *, notification_log: NotificationLog | None = None
) -> RouterRuntime:
    """Add the router to a Faust app: an agent on the alerts topic, the rebalance handlers
    and its service. Returns the runtime (its ``router`` is set once the app has started).
    ``notification_log`` defaults to ClickHouse ``notifications`` at ``settings.clickhouse_dsn``."""
    runtime = RouterRuntime(ctx, notification_log=notification_log)
    topic = app.topic(
        ctx.topics.alerts, value_type=bytes, value_serializer="raw", key_serializer="raw"
    )

    async def route_alerts(stream: Any) -> None:
        async for event in stream.events():
            await runtime.ready.wait()
            assert runtime.router is not None
            message = event.message
            await runtime.owned(message.partition)
            runtime.router.ingest_raw(
                event.value,
                where={
                    "topic": message.topic,
                    "partition": str(message.partition),
                    "offset": str(message.offset),
                },
                key=message.key,
                partition=message.partition,
            )
            await runtime.persist()  # the alert's group is on the broker before the ack

    app.agent(topic, name="tokengov.router.alerts")(route_alerts)

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        tps = args[0] if args else kwargs.get("revoked")
        await runtime.on_revoked(_alert_partitions(tps, ctx.topics.alerts))

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        tps = args[0] if args else kwargs.get("assigned")
        await runtime.on_assigned(_alert_partitions(tps, ctx.topics.alerts))

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode's stub
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]  # mode's stub

    class RouterService(Service):
        async def on_start(self) -> None:
            await runtime.start()

        async def on_stop(self) -> None:
            await runtime.stop()

    app.service(RouterService)
    return runtime
