"""Three adjustments Faust does not expose, made by :func:`adjust_faust` for every Faust app
tokengov builds (the worker's, :mod:`tokengov.app.worker_app`; the router's own,
:mod:`tokengov.app.router_app`), and a fourth for the worker process (:func:`without_spinner`).

**Topic auto-creation.** aiokafka asks for the metadata of the topics it reads and writes
with ``allow_auto_topic_creation`` left at ``True`` (it has no setting for it), so a broker
that allows auto-creation (Tansu always does; Kafka with ``auto.create.topics.enable``)
creates a missing topic with *its* default partition count — Tansu's is 4 — and the
task → partition mapping silently changes. :func:`forbid_topic_auto_creation` makes every
such request say ``False``; topics are created by tokengov only
(:func:`tokengov.core.topics.ensure_topics`), and a missing one is an error.

**Fetch wait**: how long a fetch may wait on the broker.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``, hard-coded.
Tansu holds a fetch that finds no new data and answers it after up to about half that
wait, even when data arrives a millisecond later. Measured with a bare aiokafka consumer
on the embedded broker (one message at random 50–300 ms intervals, produce → consumer):
max 758 ms at 1500, 254 ms at 500, 57 ms at 100, 27 ms at 50 (p50 about 2 ms in each
case). Under Faust's 1500 that was the router's whole delay beyond ``group_wait`` (p50
373 ms, p95 715 ms, issue 15) and detection latency sawing between 0 and ~900 ms. A short
wait bounds it; the cost is more fetch requests when idle — measured, one idle consumer of
8 partitions: broker CPU 0.3 % at 1500, 2.5 % at 50, 5.2 % at 20 (consumer 0.2 %, 1.4 %,
3.2 %). 50 ms keeps the router's p95 overhead well under 100 ms at 2.5 % idle broker CPU.

**No spinner.** Faust's ``Worker`` draws a progress spinner on its stdout and, to turn it at
every log record, sets the *root* logger to DEBUG with a handler of its own (its
``_setup_spinner_handler``; the root's real handler stays at ``loglevel``). Every
``log.debug`` of aiokafka (several per fetch request and response), mode's timers (every
tick) and Faust then builds a record, walks the stack for its caller and hands it to two
handlers, to print nothing: ~6,900 records, 0.24–0.36 CPU µs per event of ``--role
streams`` in ``tokengov bench streams``'s throughput run (``Logger._log`` timed in the
worker, 2026-12-06; 0.05–0.06 without the spinner: the project's own records), on both the
event loop and the consumer thread. :func:`without_spinner` removes the spinner before the worker starts, so
the root logger stays at ``loglevel`` (``--verbose``, DEBUG, has no spinner either way).

**Delivery in the fetch loop's task.** Faust's fetch loop (``Consumer._drain_messages``)
hands each message to the streams with ``await self.wait_first(callback(message),
self.suspend_flow.wait())``: mode's ``wait_first`` starts four tasks (the delivery, the flow's
suspension, the service's ``stopped`` and ``crashed``), waits for the first and cancels the
rest, ~32 µs a message (a micro-benchmark; ~0.16 µs per event of the bench's 200-event
envelopes), plus the loop iterations of those tasks. :func:`deliver_inline` runs the
delivery in the fetch loop's task instead, up to its first suspension; it normally has none
(the conductor decodes the message and puts it on each stream's queue), and then the loop
yields once so that the woken stream runs before the next delivery, as it did. A delivery
that suspends (flow control during a rebalance, a full producer buffer or stream queue)
races the flow's suspension in mode's ``wait_first`` exactly as before; with the flow
already suspended or the consumer stopping, mode's ``wait_first`` runs unchanged. Every
message is still delivered once, in order, and acked and committed by the streams as
before. Measured in the real ``--role streams`` worker (2026-12-07, docs/streams.md,
"Performance", tenth pass): the event loop's CPU outside our handlers 0.76–0.81 → 0.50–0.57
µs/event.

**A lean Monitor** (:class:`LeanMonitor`, the worker app's ``Monitor`` setting; Faust exposes
this one): Faust's Monitor counts, times and keys by stream every message four times for
Faust's web views, which the worker does not serve; it keeps only ``stream_inbound_time``,
which Faust's livelock check reads. The sensors' calls per message 0.061 → 0.032 CPU
µs/event (timed in the worker, timing included).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Coroutine, Generator
from time import monotonic
from typing import Any

from faust.sensors import Monitor

__all__ = [
    "FETCH_MAX_WAIT_MS",
    "LeanMonitor",
    "adjust_faust",
    "deliver_inline",
    "forbid_topic_auto_creation",
    "shorten_fetch_wait",
    "without_spinner",
]

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 50
_patched = False


def adjust_faust() -> None:
    """The consumer's adjustments; call before building a ``faust.App`` (idempotent)."""
    shorten_fetch_wait()
    forbid_topic_auto_creation()
    deliver_inline()


def shorten_fetch_wait(wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make Faust's worker consumer ask the broker to hold fetches at most ``wait_ms``."""
    global _patched
    if _patched:
        return
    from faust.transport.drivers import aiokafka as faust_aiokafka

    original = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read when the fetcher starts
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
    _patched = True
    log.debug("faust consumer: fetch_max_wait_ms=%d", wait_ms)


def without_spinner(worker: Any) -> Any:
    """``worker`` (a ``faust.worker.Worker`` not started yet) without its terminal spinner, so
    that it leaves the root logger at its ``loglevel`` instead of DEBUG; returns it."""
    worker.spinner = None
    return worker


def forbid_topic_auto_creation() -> None:
    """Make aiokafka's metadata requests (under Faust) never ask the broker to create a topic."""
    from aiokafka import client as aiokafka_client
    from aiokafka.protocol.metadata import MetadataRequest

    current = aiokafka_client.MetadataRequest
    if getattr(current, "tokengov_no_auto_create", False):
        return

    class NoAutoCreateMetadataRequest(MetadataRequest):  # type: ignore[misc]
        tokengov_no_auto_create = True

        def __init__(
            self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None
        ) -> None:
            super().__init__(topics, allow_auto_topic_creation=False)

    aiokafka_client.MetadataRequest = NoAutoCreateMetadataRequest
    log.debug("aiokafka: metadata requests never auto-create topics")


def deliver_inline() -> None:
    """Make Faust's consumer run each message's delivery to the streams in its fetch loop's
    task, up to the delivery's first suspension, instead of in four new tasks per message
    (mode's ``wait_first``); a delivery that suspends races the flow's suspension as before
    (the module's docstring has why and what it saves)"""
    from faust.transport.drivers import aiokafka as faust_aiokafka
    from mode.services import WaitResults

    consumer_class = faust_aiokafka.Consumer
    if getattr(consumer_class.wait_first, "tokengov_inline", False):
        return
    wait_first = consumer_class.wait_first

    async def inline_wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if (
            timeout is not None
            or len(coros) != 2
            or not _waits_on(coros[1], self.suspend_flow)
            or not inspect.iscoroutine(coros[0])
            or self.suspend_flow.is_set()
            or self._stopped.is_set()
            or self._crashed.is_set()
        ):
            return await wait_first(self, *coros, timeout=timeout)
        delivery, suspended = coros
        try:
            first = delivery.send(None)
        except StopIteration as finished:
            suspended.close()
            await asyncio.sleep(0)  # the woken stream runs before the next delivery
            return WaitResults([delivery], [finished.value], False)
        except BaseException:
            suspended.close()
            raise
        rest = _Rest(delivery, first)
        results = await wait_first(self, rest, suspended)
        winners = [delivery if winner is rest else winner for winner in results.done]
        return WaitResults(winners, results.results, results.stopped)

    inline_wait_first.tokengov_inline = True  # type: ignore[attr-defined]
    consumer_class.wait_first = inline_wait_first  # type: ignore[method-assign]
    log.debug("faust consumer: messages delivered inline")


def _waits_on(coro: Any, event: Any) -> bool:
    """Whether ``coro`` is ``event.wait()``, not started."""
    frame = getattr(coro, "cr_frame", None)
    return (
        frame is not None
        and coro.cr_code is type(event).wait.__code__
        and frame.f_locals.get("self") is event
    )


class _Rest:
    """The rest of a coroutine run up to its first suspension (which yielded ``first``)."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._first
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancelled: pass it on to the delivery
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


class LeanMonitor(Monitor):
    """Faust's Monitor without its per-message statistics, for the worker's app
    (``faust.App(..., Monitor=LeanMonitor)``).

    Faust calls its sensors four times for every message (in, stream in, stream out,
    out); the Monitor counts, times and keys each by stream and task name, for Faust's web
    views (off in the worker: ``web_enabled=False``), which nothing of tokengov reads.
    Kept: when a partition's stream last took an event (``stream_inbound_time``), which
    Faust's livelock check reads to warn of a stalled partition, and every other hook
    (commits, sends, rebalances, assignments: a few a second at most)."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None
