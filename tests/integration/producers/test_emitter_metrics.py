"""The SDK's counters as a Prometheus collector, scraped after real deliveries to the
session broker and read back with prometheus-client's parser."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tokengov.producers.emitter import TokenEmitter

pytestmark = pytest.mark.integration


def scrape(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("topic") is not None
    }


def test_collector_reads_the_emitters_counters(bootstrap, topic_names, tmp_path) -> None:
    registry = CollectorRegistry()
    with TokenEmitter(bootstrap, topic=topic_names.events, spool_dir=tmp_path / "spool") as emitter:
        registry.register(emitter.prometheus_collector())
        with emitter.task(team="search", workflow="wf", task_id="t-1", agent="a") as task:
            for _ in range(5):
                task.record({"input": 10, "output": 1}, model="m")
        emitter.emit_call(team="search", workflow="wf", task_id="t-2", tokens={"input": -1})
        assert emitter.flush(20)
        values = scrape(registry)
    assert values["tokengov_sdk_events_accepted_total"] == 7  # 5 calls, 1 outcome, 1 invalid
    assert values["tokengov_sdk_events_delivered_total"] == 6
    assert values["tokengov_sdk_events_invalid_total"] == 1
    assert values["tokengov_sdk_events_spooled_total"] == 0
    assert values["tokengov_sdk_events_overflow_total"] == 0
    assert values["tokengov_sdk_spooling"] == 0
