"""LatencyHistogram rendered as Prometheus text and read back with prometheus-client's own
parser (the reference reader of the exposition format)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from tokengov.core.observability import LatencyHistogram, histogram_family


class _One(Collector):
    def __init__(self, histogram: LatencyHistogram) -> None:
        self.histogram = histogram

    def collect(self):  # type: ignore[no-untyped-def]
        yield histogram_family("t_latency_seconds", "test", {("a",): self.histogram}, ["stage"])


def test_buckets_are_cumulative_with_inf_sum_and_count() -> None:
    histogram = LatencyHistogram(buckets_s=(0.01, 0.25, 5.0))
    for seconds in (0.003, 0.01, 0.2, 7.0):  # 0.01 falls in le="0.01" (bounds are inclusive)
        histogram.observe(seconds)
    registry = CollectorRegistry()
    registry.register(_One(histogram))
    (family,) = text_string_to_metric_families(generate_latest(registry).decode())
    assert family.type == "histogram" and family.name == "t_latency_seconds"
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("t_latency_seconds_bucket", "0.01")] == 2
    assert samples[("t_latency_seconds_bucket", "0.25")] == 3
    assert samples[("t_latency_seconds_bucket", "5.0")] == 3
    assert samples[("t_latency_seconds_bucket", "+Inf")] == 4
    assert samples[("t_latency_seconds_count", None)] == 4
    assert abs(samples[("t_latency_seconds_sum", None)] - 7.213) < 1e-9
    assert all(s.labels["stage"] == "a" for s in family.samples)


def test_counters_holding_a_histogram_can_be_copied_as_a_dict():
    """The sink's counters hold a histogram (a lock inside): ``dataclasses.asdict`` of them
    (the writer's JSON summary) must copy its counts, not fail on the lock."""
    import dataclasses

    @dataclasses.dataclass
    class Counters:
        flushes: int = 0
        latency: LatencyHistogram = dataclasses.field(default_factory=LatencyHistogram)

    counters = Counters(flushes=2)
    counters.latency.observe(0.003)
    counters.latency.observe(7.0)
    copied = dataclasses.asdict(counters)
    assert copied["flushes"] == 2
    assert copied["latency"].snapshot() == counters.latency.snapshot()
    counters.latency.observe(1.0)  # the copy is a snapshot, the original goes on
    assert copied["latency"].count == 2 and counters.latency.count == 3
