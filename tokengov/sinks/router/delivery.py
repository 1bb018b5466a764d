"""Delivery you can trust: one queue and worker task per receiver, bounded retries
with exponential backoff and jitter, every attempt recorded.

A slow or failing receiver only ever holds up its own queue. A notification
whose retries are exhausted (or whose error cannot be fixed by retrying, such as
a 4xx or a missing secret) is handed to ``on_dead`` — the router dead-letters it
and raises a ``receiver_failing`` alert.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tokengov.core.contracts import utcnow
from tokengov.core.errors import DeliveryError
from tokengov.sinks.router.notification import AttemptResult, Notification, NotificationAttempt
from tokengov.sinks.router.notification_log import NotificationLog
from tokengov.sinks.router.receivers.base import Receiver

__all__ = ["ReceiverQueue", "RetryPolicy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries; before try n+1 wait about ``initial_backoff_s × multiplier^(n-1)``
    (at most ``max_backoff_s``), jittered to between half and all of it."""

    max_attempts: int = 6
    initial_backoff_s: float = 0.5
    multiplier: float = 2.0
    max_backoff_s: float = 30.0
    attempt_timeout_s: float = 60.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


OnDelivered = Callable[[Notification], None]
OnDead = Callable[[Notification, DeliveryError, int], Awaitable[None]]


class ReceiverQueue:
    def __init__(
        self,
        receiver: Receiver,
        *,
        log_: NotificationLog,
        on_delivered: OnDelivered,
        on_dead: OnDead,
        retry: RetryPolicy | None = None,
        workers: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        self.receiver = receiver
        self.name = receiver.name
        self.log = log_
        self.on_delivered = on_delivered
        self.on_dead = on_dead
        self.retry = retry or RetryPolicy()
        self.workers = workers
        self.rng = rng or random.Random()
        self._queue: asyncio.Queue[Notification] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.busy = 0

    def put(self, notification: Notification) -> None:
        self._queue.put_nowait(notification)

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + self.busy

    def start(self) -> None:
        for i in range(self.workers):
            self._tasks.append(
                asyncio.create_task(self._work(), name=f"tokengov-receiver-{self.name}-{i}")
            )

    async def stop(self) -> None:
        """Stop at once; an unfinished notification stays in the outbox for the next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _work(self) -> None:
        while True:
            notification = await self._queue.get()
            self.busy += 1
            try:
                await self.deliver(notification)
            finally:
                self.busy -= 1
                self._queue.task_done()

    def _record(
        self, notification: Notification, attempt: int, result: AttemptResult, error: str, ms: int
    ) -> None:
        ts = utcnow()
        for alert in notification.alerts:
            self.log.record(
                NotificationAttempt(
                    alert_id=alert.alert_id,
                    fingerprint=alert.fingerprint,
                    receiver=self.name,
                    attempt=attempt,
                    result=result,
                    error=error,
                    latency_ms=ms,
                    ts=ts,
                    notification_id=notification.notification_id,
                    group_key=notification.group_key,
                    status=alert.status,
                )
            )

    async def deliver(self, notification: Notification) -> bool:
        """Try until delivered or given up. True when delivered."""
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.retry.attempt_timeout_s):
                    await self.receiver.send(notification)
            except TimeoutError:
                error = DeliveryError(
                    self.name, f"no result within {self.retry.attempt_timeout_s:g}s", retryable=True
                )
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # a receiver bug must not kill the queue
                log.error("receiver %s raised %s unexpectedly", self.name, type(exc).__name__)
                error = DeliveryError(self.name, f"unexpected {type(exc).__name__}", retryable=True)
            else:
                ms = int((time.perf_counter() - started) * 1000)
                self._record(notification, attempt, "delivered", "", ms)
                log.info(
                    "delivered %s to %s (%d alert(s), attempt %d, %d ms)",
                    notification.title(),
                    self.name,
                    len(notification.alerts),
                    attempt,
                    ms,
                )
                self.on_delivered(notification)
                return True
            ms = int((time.perf_counter() - started) * 1000)
            last = attempt >= self.retry.max_attempts or not error.retryable
            self._record(notification, attempt, "dead_letter" if last else "failed", str(error), ms)
            if last:
                log.error(
                    "giving up on notification %s to %s after %d attempt(s): %s",
                    notification.notification_id,
                    self.name,
                    attempt,
                    error,
                )
                await self.on_dead(notification, error, attempt)
                return False
            delay = self.retry.delay_s(attempt, self.rng)
            log.warning(
                "attempt %d to %s failed (%s); retrying in %.2fs", attempt, self.name, error, delay
            )
            await asyncio.sleep(delay)
