"""The SDK's counters as a Prometheus collector (prometheus-client: ``tokengov[metrics]``).

Imported only by :meth:`tokengov.producers.emitter.TokenEmitter.prometheus_collector`, so
the SDK needs prometheus-client only when an agent asks for the collector::

    from prometheus_client import REGISTRY
    REGISTRY.register(emitter.prometheus_collector())

Each counter of :class:`~tokengov.producers.emitter.EmitterStats` is read at scrape time
(nothing is counted twice) as ``tokengov_sdk_events_<counter>_total{topic=…}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tokengov.producers.emitter import TokenEmitter

__all__ = ["COUNTERS", "EmitterCollector"]

#: EmitterStats field → what its counter says (``tokengov_sdk_events_<field>_total``).
COUNTERS: dict[str, str] = {
    "accepted": "Events taken at the call site.",
    "produced": "Events handed to librdkafka.",
    "delivered": "Events acknowledged by the broker.",
    "spooled": "Events written to the disk spool (the broker was unreachable).",
    "replayed": "Events delivered from the spool.",
    "invalid": "Events that failed validation: logged with the field, not sent.",
    "overflow": "Events not sent because the in-memory queue was full or the emitter closed.",
}


class EmitterCollector(Collector):
    def __init__(self, emitter: TokenEmitter) -> None:
        self.emitter = emitter

    def collect(self) -> Iterator[Metric]:
        topic = self.emitter.topic
        stats = self.emitter.stats
        for name, doc in COUNTERS.items():
            family = CounterMetricFamily(f"tokengov_sdk_events_{name}_total", doc, labels=["topic"])
            family.add_metric([topic], getattr(stats, name))
            yield family
        queued = GaugeMetricFamily(
            "tokengov_sdk_queued_events", "Events waiting in memory to be sent.", labels=["topic"]
        )
        queued.add_metric([topic], self.emitter.queued)
        yield queued
        spooling = GaugeMetricFamily(
            "tokengov_sdk_spooling",
            "1 while the emitter writes to its disk spool (broker unreachable), else 0.",
            labels=["topic"],
        )
        spooling.add_metric([topic], 1 if self.emitter.spooling else 0)
        yield spooling
