"""Publishing a request's events and dead letters, and knowing when Kafka has them all.

:class:`DeliveryTracker` wraps a :class:`~tokengov.core.kafka.CheckedProducer`: one thread
serves its delivery reports, and :meth:`DeliveryTracker.publish` returns (to the event loop)
once the brokers acknowledged every message of the request, or raises
:class:`~tokengov.core.errors.BrokerError` when one failed, the wait timed out or the
producer's queue is full (at once: the event loop never waits for room) — the receiver then
answers 503 and acknowledges nothing. Messages are the conversion's envelopes,
keyed by task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from tokengov.core.deadletter import encode_dead_letter
from tokengov.core.errors import BrokerError
from tokengov.core.kafka import CheckedProducer
from tokengov.core.topics import Topics
from tokengov.ingest.otlp.spans import Conversion

__all__ = ["DeliveryTracker", "messages"]

log = logging.getLogger(__name__)


def messages(conversion: Conversion, topics: Topics) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of every message a request becomes: its envelopes keyed by task,
    then one dead letter per rejected span (key: the trace id)."""
    out = [(topics.events, task.encode(), value) for task, value in conversion.envelopes]
    for rejected in conversion.rejected:
        value = encode_dead_letter(
            reason=rejected.reason,
            stage="ingest",
            raw=rejected.document,
            raw_is="span",
            key=rejected.trace_id.encode(),
            details={"trace_id": rejected.trace_id, "span_id": rejected.span_id},
        )
        out.append((topics.deadletter, rejected.trace_id.encode(), value))
    return out


class _Pending:
    """The outstanding deliveries of one request. Reports are counted where they are served
    (the delivery thread, or the event loop's own ``poll``) and the loop is woken once, when
    the last one arrives: one wake-up a request, not one a message."""

    __slots__ = ("_lock", "errors", "future", "left", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.left = count
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def report(self, error: str | None) -> None:
        """Called where delivery reports are served (any thread)."""
        with self._lock:
            if error is not None and len(self.errors) < 5:
                self.errors.append(error)
            self.left -= 1
            last = self.left == 0
        if last:
            self.loop.call_soon_threadsafe(self._done)

    def _done(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class DeliveryTracker:
    """Publishes through ``producer`` and awaits each request's acknowledgements."""

    def __init__(self, producer: CheckedProducer, *, timeout_s: float = 5.0) -> None:
        self.producer = producer
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="otlp-delivery", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    async def publish(self, batch: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Publish ``batch``; return once every message is acknowledged, else raise
        :class:`BrokerError` (failed, or not acknowledged within ``timeout_s``)."""
        if not batch:
            return
        pending = _Pending(asyncio.get_running_loop(), len(batch))
        for topic, key, value in batch:
            # never wait for room on the event loop: a full queue (Kafka slow or down) fails
            # the request at once (503); what was queued of it is delivered or fails alone
            self.producer.publish(topic, value, key=key, on_delivery=pending.report, wait=False)
        try:
            await asyncio.wait_for(asyncio.shield(pending.future), self.timeout_s)
        except TimeoutError as exc:
            raise BrokerError(
                f"{pending.left} of {len(batch)} message(s) not acknowledged by "
                f"{self.producer.bootstrap} within {self.timeout_s:g}s"
            ) from exc
        if pending.errors:
            raise BrokerError(
                f"{len(pending.errors)} message(s) not delivered to {self.producer.bootstrap}: "
                + "; ".join(pending.errors)
            )

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is queued (up to ``timeout_s``, default the delivery timeout), then
        stop serving reports."""
        left = self.producer.flush(self.timeout_s if timeout_s is None else timeout_s)
        if left:
            log.error("OTLP receiver: %d message(s) still undelivered at shutdown", left)
        self._stop.set()
        self._thread.join(timeout=1.0)
