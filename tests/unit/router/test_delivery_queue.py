"""The per-receiver queue with an in-memory receiver: attempts, retries, giving up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tokengov.core.errors import DeliveryError
from tokengov.sinks.router.delivery import ReceiverQueue, RetryPolicy
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.notification_log import MemoryNotificationLog

pytestmark = pytest.mark.asyncio


class ScriptedReceiver:
    """Fails with the scripted errors, then succeeds."""

    def __init__(self, errors: list[DeliveryError]) -> None:
        self.name = "scripted"
        self.errors = errors
        self.calls = 0

    async def send(self, notification: Notification) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def note(make_alert) -> Notification:
    return Notification(
        receiver="scripted",
        route="routes",
        group_key="g",
        group_labels={},
        reason="first notification",
        created_at=datetime.now(UTC),
        alerts=[make_alert(task="t-1"), make_alert(task="t-2")],
    )


async def run(receiver, notification, retry):
    log = MemoryNotificationLog()
    delivered, dead = [], []

    async def on_dead(n, error, attempts):
        dead.append((n, str(error), attempts))

    queue = ReceiverQueue(
        receiver, log_=log, on_delivered=delivered.append, on_dead=on_dead, retry=retry
    )
    ok = await queue.deliver(notification)
    return ok, log, delivered, dead


FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.002)


async def test_retryable_errors_are_retried_until_delivered(make_alert):
    receiver = ScriptedReceiver([DeliveryError("scripted", "HTTP 503")] * 2)
    ok, log, delivered, dead = await run(receiver, note(make_alert), FAST)
    assert ok and receiver.calls == 3 and len(delivered) == 1 and not dead
    # one row per alert per attempt
    assert [
        (a.attempt, a.result) for a in log.attempts if a.alert_id == log.attempts[0].alert_id
    ] == [(1, "failed"), (2, "failed"), (3, "delivered")]
    assert len(log.attempts) == 6


async def test_gives_up_after_max_attempts(make_alert):
    receiver = ScriptedReceiver([DeliveryError("scripted", "HTTP 500")] * 10)
    ok, log, _, dead = await run(receiver, note(make_alert), FAST)
    assert not ok and receiver.calls == 4 and dead[0][2] == 4
    assert log.attempts[-1].result == "dead_letter"


async def test_permanent_error_is_not_retried(make_alert):
    receiver = ScriptedReceiver([DeliveryError("scripted", "HTTP 404", retryable=False)])
    _, _, _, dead = await run(receiver, note(make_alert), FAST)
    assert receiver.calls == 1 and dead[0][2] == 1


async def test_a_hanging_receiver_times_out(make_alert):
    class Hanging:
        name = "hanging"

        async def send(self, notification):
            await asyncio.Event().wait()

    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, attempt_timeout_s=0.05)
    ok, _, _, dead = await run(Hanging(), note(make_alert), policy)
    assert not ok and "no result within 0.05s" in dead[0][1]
