"""The router role of ``tokengov worker`` (``--role router``; part of ``all``).

``register(app, ctx)`` adds to the Faust app:

- an agent on ``ctx.topics.alerts`` that hands every message to the router (an
  invalid one is dead-lettered with the reason, topic, partition and offset);
- a service that owns the router: its durable state under ``<data dir>/router/``,
  the receivers, the ``notifications`` log in ClickHouse, the dead-letter
  producer, and a thread following ``ctx.topics.silences``.

Faust acknowledges a message once the agent returns from it; by then the alert is
in the router's SQLite state, so an acknowledged alert is never lost.
"""

from __future__ import annotations

import asyncio
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
from tokengov.core.worker_context import WorkerContext
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.inhibit import BUILTIN_RULES, Inhibitor, rules_from_policy
from tokengov.sinks.router.kafka import KafkaAlertSink, KafkaDeadLetters, SilenceTopic
from tokengov.sinks.router.notification_log import (
    ClickHouseNotificationLog,
    MemoryNotificationLog,
    NotificationLog,
)
from tokengov.sinks.router.receivers import build_receivers
from tokengov.sinks.router.router import Router
from tokengov.sinks.router.silences import Silence, SilenceStore
from tokengov.sinks.router.state import SqliteState
from tokengov.sinks.router.tree import RouteTree

__all__ = ["RouterRuntime", "inhibitor_for", "register"]

log = logging.getLogger(__name__)


def inhibitor_for(policy: Policy) -> Inhibitor:
    return Inhibitor([*BUILTIN_RULES, *rules_from_policy(policy.inhibit_rules)])


class RouterRuntime:
    """Builds, starts and stops everything the router needs, from a worker context."""

    def __init__(
        self, ctx: WorkerContext, *, notification_log: NotificationLog | None = None
    ) -> None:
        self.ctx = ctx
        self._notification_log = notification_log
        self.router: Router | None = None
        self.ready = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._state: SqliteState | None = None
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

    async def start(self) -> Router:
        self._loop = asyncio.get_running_loop()
        policy = self.ctx.policy.current
        settings = self.ctx.settings
        self._state = SqliteState.in_data_dir(settings.data_dir)
        silences = SilenceStore(self._state.load_silences())
        dispatcher = Dispatcher(
            RouteTree.from_policy(policy),
            self._state,
            inhibitor=inhibitor_for(policy),
            silences=silences,
        )
        self._client = httpx.AsyncClient(follow_redirects=False)
        self._publisher = CheckedProducer(self.ctx.kafka, client_id="tokengov-router")
        self.router = Router(
            dispatcher,
            self._receivers(policy),
            notification_log=self._open_log(),
            dead_letters=KafkaDeadLetters(self._publisher, self.ctx.topics.deadletter),
            alert_sink=KafkaAlertSink(self._publisher, self.ctx.topics.alerts),
        )
        await self.router.start()
        self._follower = threading.Thread(
            target=self._follow_silences, args=(silences,), name="tokengov-silences", daemon=True
        )
        self._follower.start()
        self.ctx.policy.subscribe(self._on_policy)
        self.ready.set()
        log.info(
            "alert router started (%d receivers, state in %s)",
            len(policy.receivers),
            self._state.path,
        )
        return self.router

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
            assert self.router is not None
            self.router.dispatcher.set_tree(RouteTree.from_policy(policy), inhibitor_for(policy))
            self.router.set_receivers(self._receivers(policy))
            log.warning("router: new routing tree and receivers in force")

        self._loop.call_soon_threadsafe(apply)

    def _follow_silences(self, store: SilenceStore) -> None:
        assert self._state is not None
        state = self._state
        topic = SilenceTopic(self.ctx.kafka, self.ctx.topics.silences)

        def on_silence(silence: Silence) -> None:
            if store.apply(silence):
                state.save_silence(silence)
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
        if self.router is not None:
            await self.router.stop()
            self.router.close()
        if self._follower is not None:
            await asyncio.to_thread(self._follower.join, 5.0)
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.flush, 5.0)
        if self._client is not None:
            await self._client.aclose()
        if self._state is not None:
            self._state.close()


def register(
    app: faust.App, ctx: WorkerContext, *, notification_log: NotificationLog | None = None
) -> RouterRuntime:
    """Add the router to a Faust app: an agent on the alerts topic and its service.
    Returns the runtime (its ``router`` is set once the app has started).
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
            runtime.router.ingest_raw(
                event.value,
                where={
                    "topic": message.topic,
                    "partition": str(message.partition),
                    "offset": str(message.offset),
                },
                key=message.key,
            )

    app.agent(topic, name="tokengov.router.alerts")(route_alerts)

    class RouterService(Service):
        async def on_start(self) -> None:
            await runtime.start()

        async def on_stop(self) -> None:
            await runtime.stop()

    app.service(RouterService)
    return runtime
