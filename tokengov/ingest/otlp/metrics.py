"""The OTLP receiver's counters as Prometheus metrics (prometheus-client's custom collector):
served by the receiver's own ``/metrics`` and by the worker's metrics server when the worker
runs the ``otlp`` role (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from tokengov.ingest.otlp.server import ReceiverStats

__all__ = ["OtlpCollector"]

#: (counter name without tokengov_otlp_ and _total, the ReceiverStats field, its help)
_SPAN_COUNTERS = (
    ("spans_received", "spans in accepted requests"),
    ("spans_ignored", "spans that are not GenAI spans"),
    ("spans_aggregate", "agent, workflow and tool spans (their model calls count)"),
    ("spans_rejected", "GenAI spans that could not become events (dead-lettered)"),
    ("events_delivered", "call events acknowledged by Kafka"),
)


class OtlpCollector(Collector):
    """Reads a receiver's :class:`ReceiverStats` at scrape time (``stats`` returns None
    while no receiver listens: nothing is reported then)."""

    def __init__(self, stats: Callable[[], ReceiverStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        stats = self._stats()
        if stats is None:
            return
        requests = CounterMetricFamily(
            "tokengov_otlp_requests",
            "OTLP/HTTP export requests answered, by HTTP status.",
            labels=("status",),
        )
        for status, count in sorted(stats.requests_by_status.items()):
            requests.add_metric([str(status)], count)
        yield requests
        for name, help_ in _SPAN_COUNTERS:
            family = CounterMetricFamily(
                f"tokengov_otlp_{name}", help_[0].upper() + help_[1:] + "."
            )
            family.add_metric([], getattr(stats, name))
            yield family
