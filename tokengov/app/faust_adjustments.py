"""Two adjustments Faust does not expose, made by :func:`adjust_faust` for every Faust app
tokengov builds (the worker's, :mod:`tokengov.app.worker_app`; the router's own,
:mod:`tokengov.app.router_app`), and a third for the worker process (:func:`without_spinner`).

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
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "FETCH_MAX_WAIT_MS",
    "adjust_faust",
    "forbid_topic_auto_creation",
    "shorten_fetch_wait",
    "without_spinner",
]

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 50
_patched = False


def adjust_faust() -> None:
    """Both adjustments; call before building a ``faust.App`` (idempotent)."""
    shorten_fetch_wait()
    forbid_topic_auto_creation()


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
