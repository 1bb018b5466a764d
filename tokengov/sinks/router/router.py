"""The router at run time: the dispatcher's timers, one delivery queue per receiver,
the notification log, dead letters and ``receiver_failing`` alerts.

:class:`Router` is transport-free: whatever consumes ``tokengov.alerts`` (the Faust
agent of :mod:`tokengov.sinks.router.role`, a test, the benchmark) calls :meth:`Router.ingest`
or :meth:`Router.ingest_raw`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from tokengov.core.contracts import Alert, describe_validation_error
from tokengov.core.errors import DeliveryError, SinkError
from tokengov.sinks.router.delivery import ReceiverQueue, RetryPolicy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.notification_log import NotificationLog
from tokengov.sinks.router.ownership import PartitionedDispatcher
from tokengov.sinks.router.receivers.base import Receiver

__all__ = ["AlertSink", "DeadLetterSink", "Router", "receiver_failing_alert"]

#: How long a flush waits for its notifications' outbox records to be stored
#: (``Router(persist=...)``) before it sends them anyway.
PERSIST_WAIT_S = 15.0

log = logging.getLogger(__name__)

#: The team label of alerts about tokengov itself (no policy team: the default route gets them).
SYSTEM_TEAM = "tokengov"


class DeadLetterSink(Protocol):
    """Publishes a dead letter: ``value`` (a message of ``where`` — topic, partition,
    offset — with ``key``; or, with no ``where``, an undeliverable notification) with why,
    and ``details`` (receiver, notification_id, attempts)."""

    def publish(
        self,
        value: bytes,
        *,
        reason: str,
        where: Mapping[str, str] | None = None,
        key: bytes | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None: ...


class AlertSink(Protocol):
    def publish(self, alert: Alert) -> None: ...


def receiver_failing_alert(
    receiver: str, error: DeliveryError, attempts: int, notification: Notification, now: datetime
) -> Alert:
    return Alert(
        fingerprint=f"receiver_failing|{receiver}",
        kind="receiver_failing",
        severity="critical",
        team=SYSTEM_TEAM,
        labels={"receiver": receiver},
        summary=(
            f"receiver {receiver} keeps failing: notification {notification.title()} "
            f"gave up after {attempts} attempt(s) and went to the dead-letter topic"
        ),
        evidence={
            "receiver": receiver,
            "attempts": attempts,
            "last_error": str(error),
            "retryable": error.retryable,
            "notification_id": notification.notification_id,
            "group_key": notification.group_key,
            "alerts": len(notification.alerts),
        },
        starts_at=now,
    )


class Router:
    def __init__(
        self,
        dispatcher: Dispatcher | PartitionedDispatcher,
        receivers: Mapping[str, Receiver],
        *,
        notification_log: NotificationLog,
        dead_letters: DeadLetterSink | None = None,
        alert_sink: AlertSink | None = None,
        retry: RetryPolicy | None = None,
        workers_per_receiver: int = 1,
        log_flush_interval_s: float = 1.0,
        maintenance_interval_s: float = 3600.0,
        persist: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        #: Waits until the state written so far (the outbox among it) is stored: called
        #: before new notifications go out, so that one this router dies delivering is in
        #: the outbox its partition's next owner reads, and goes again with the same id.
        self.persist = persist
        self.notification_log = notification_log
        self.dead_letters = dead_letters
        self.alert_sink = alert_sink
        self.retry = retry or RetryPolicy()
        self.workers_per_receiver = workers_per_receiver
        self.log_flush_interval_s = log_flush_interval_s
        self.maintenance_interval_s = maintenance_interval_s
        self.queues: dict[str, ReceiverQueue] = {}
        self._receivers = dict(receivers)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._failing: dict[str, Alert] = {}
        self.dead_lettered = 0
        self.invalid_alerts = 0
        self.started = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        for name, receiver in self._receivers.items():
            self.queues[name] = self._queue_for(receiver)
        for queue in self.queues.values():
            queue.start()
        await self.resume(self.dispatcher.pending())
        self._tasks = [
            asyncio.create_task(self._timers(), name="tokengov-router-timers"),
            asyncio.create_task(self._flush_log_forever(), name="tokengov-router-log"),
        ]
        self.started = True

    async def stop(self) -> None:
        """Stop now. Undelivered notifications stay in the outbox and are delivered on the
        next start (at least once)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*(q.stop() for q in self.queues.values()))
        await asyncio.to_thread(self._flush_log_once)
        self.started = False

    async def resume(self, notifications: list[Notification]) -> None:
        """Deliver notifications left in an outbox (after a restart, or a takeover of a
        partition), and let the timers see the groups that came with them."""
        for notification in notifications:
            log.info("resuming delivery of %s to %s", notification.title(), notification.receiver)
            await self._enqueue(notification)
        self._wake.set()

    def close(self) -> None:
        """Release the notification log (after :meth:`stop`)."""
        self.notification_log.close()

    def set_receivers(self, receivers: Mapping[str, Receiver]) -> None:
        """A new policy: queues for new receivers, new objects for the rest."""
        self._receivers = dict(receivers)
        for name, receiver in receivers.items():
            queue = self.queues.get(name)
            if queue is None:
                queue = self.queues[name] = self._queue_for(receiver)
                if self.started:
                    queue.start()
            else:
                queue.receiver = receiver

    def _queue_for(self, receiver: Receiver) -> ReceiverQueue:
        return ReceiverQueue(
            receiver,
            log_=self.notification_log,
            on_delivered=self._delivered,
            on_dead=self._dead,
            retry=self.retry,
            workers=self.workers_per_receiver,
        )

    # ------------------------------------------------------------------ input

    def ingest(self, alert: Alert, *, partition: int | None = None) -> None:
        """``partition``: the alerts partition it was read from (a partitioned dispatcher
        files it there; None: an alert of this router's own)."""
        if isinstance(self.dispatcher, PartitionedDispatcher):
            self.dispatcher.ingest(alert, partition)
        else:
            self.dispatcher.ingest(alert)
        self._wake.set()

    def ingest_raw(
        self,
        raw: bytes,
        *,
        where: Mapping[str, str] | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> bool:
        """Decode one message of ``tokengov.alerts`` (read from ``partition``); an invalid one
        is dead-lettered with the reason. True when it was a valid alert."""
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError as exc:
            reason = f"invalid alert: {describe_validation_error(exc)}"
            self.invalid_alerts += 1
            log.error("%s (%s)", reason, ", ".join(f"{k}={v}" for k, v in (where or {}).items()))
            if self.dead_letters is not None:
                self.dead_letters.publish(raw, reason=reason, where=where, key=key)
            return False
        try:
            self.ingest(alert, partition=partition)
        except Exception as exc:
            # The alert could not be stored (state unwritable…): give the message an ending.
            reason = f"router could not take the alert: {type(exc).__name__}: {exc}"
            log.exception("%s (alert %s)", reason, alert.alert_id)
            if self.dead_letters is not None:
                self.dead_letters.publish(raw, reason=reason, where=where, key=key)
            return False
        return True

    # ---------------------------------------------------------------- timers

    async def _timers(self) -> None:
        while True:
            try:
                due = self.dispatcher.flush_due()
                if due and self.persist is not None:
                    await self._persisted(len(due))
                for notification in due:
                    await self._enqueue(notification)
            except Exception:
                # The loop must survive a bad group: log it loudly and keep the others going.
                log.exception("router flush failed")
            deadline = self.dispatcher.next_deadline()
            wait_s = 1.0
            if deadline is not None:
                wait_s = min(wait_s, max(0.0, (deadline - self.dispatcher.clock()).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()

    async def _persisted(self, count: int) -> None:
        """Wait (up to :data:`PERSIST_WAIT_S`) for the outbox records of ``count`` new
        notifications to be stored. Past that they go out anyway: paging late or not at all
        is worse than the same change told twice (a next owner would not know of them and
        send its own, with another id)."""
        assert self.persist is not None
        try:
            async with asyncio.timeout(PERSIST_WAIT_S):
                await self.persist()
        except Exception as exc:  # incl. TimeoutError
            log.warning(
                "%d notification(s) sent before their outbox records were stored (%s): a "
                "router that dies now leaves its partitions' next owner to notify again",
                count,
                type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
            )

    async def _enqueue(self, notification: Notification) -> None:
        queue = self.queues.get(notification.receiver)
        if queue is None:
            error = DeliveryError(
                notification.receiver, "no such receiver in the policy in force", retryable=False
            )
            await self._dead(notification, error, 0)
            return
        queue.put(notification)

    # -------------------------------------------------------------- outcomes

    def _delivered(self, notification: Notification) -> None:
        self.dispatcher.delivered(notification)
        failing = self._failing.pop(notification.receiver, None)
        if failing is not None:
            now = self.dispatcher.clock()
            resolved = failing.model_copy(update={"status": "resolved", "ends_at": now})
            log.warning(
                "receiver %s delivers again: resolving its receiver_failing alert",
                notification.receiver,
            )
            self._raise(resolved)

    async def _dead(self, notification: Notification, error: DeliveryError, attempts: int) -> None:
        self.dead_lettered += 1
        if self.dead_letters is not None:
            try:
                self.dead_letters.publish(
                    notification.body(),
                    reason=f"undeliverable: {error}",
                    details={
                        "receiver": notification.receiver,
                        "notification_id": notification.notification_id,
                        "attempts": str(attempts),
                    },
                )
            except Exception as exc:
                log.error(
                    "could not dead-letter notification %s: %s", notification.notification_id, exc
                )
        self.dispatcher.abandoned(notification)
        if all(a.kind == "receiver_failing" for a in notification.alerts):
            return  # never alert about failing to deliver an alert about failing delivery
        alert = receiver_failing_alert(
            notification.receiver, error, attempts, notification, self.dispatcher.clock()
        )
        known = self._failing.get(notification.receiver)
        if known is not None:
            alert = alert.model_copy(
                update={"alert_id": known.alert_id, "starts_at": known.starts_at}
            )
        self._failing[notification.receiver] = alert
        self._raise(alert)

    def _raise(self, alert: Alert) -> None:
        """An alert of the router's own: routed here, and published for the history."""
        self.ingest(alert)
        if self.alert_sink is not None:
            try:
                self.alert_sink.publish(alert)
            except Exception as exc:
                log.error("could not publish %s alert: %s", alert.kind, exc)

    # ------------------------------------------------------------ notif. log

    def _flush_log_once(self) -> None:
        try:
            self.notification_log.flush()
        except SinkError as exc:
            log.error("notification log: %s (kept for the next flush)", exc)

    async def _flush_log_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_maintenance = loop.time() + self.maintenance_interval_s
        while True:
            await asyncio.sleep(self.log_flush_interval_s)
            await asyncio.to_thread(self._flush_log_once)
            if loop.time() >= next_maintenance:
                next_maintenance = loop.time() + self.maintenance_interval_s
                removed = self.dispatcher.maintenance()
                if removed:
                    log.info("forgot %d notification-log entries past retention", removed)
