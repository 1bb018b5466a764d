"""Two adjustments Faust does not expose.

**Topic auto-creation.** aiokafka asks for the metadata of the topics it reads and writes
with ``allow_auto_topic_creation`` left at ``True`` (it has no setting for it), so a broker
that allows auto-creation (Tansu always does; Kafka with ``auto.create.topics.enable``)
creates a missing topic with *its* default partition count — Tansu's is 4 — and the
task → partition mapping silently changes. :func:`forbid_topic_auto_creation` makes every
such request say ``False``; topics are created by tokengov only
(:func:`tokengov.core.topics.ensure_topics`), and a missing one is an error.

**Fetch wait**: how long a fetch may wait on the broker.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``, hard-coded.
Tansu answers a fetch that finds no new data only when that wait expires,
even if data arrives a millisecond later (measured: detection latency then
saws between 0 and ~900 ms under steady load). A short wait bounds that
delay; the cost is a few more fetch requests per second when idle.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["FETCH_MAX_WAIT_MS", "forbid_topic_auto_creation", "shorten_fetch_wait"]

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 50
_patched = False


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
