"""``tokengov bench sdk``: the SDK's cost at the agent's call site, next to a bare produce.

Both run in the same process against the same broker with the same event bytes:

* baseline — ``confluent_kafka.Producer.produce`` of the pre-serialized event, keyed by task;
* SDK — ``task.record(usage, model=…, components=…)``, what an instrumented agent calls.

Reported: per-call median / p99 / p99.9 at the call site, the ratio SDK/baseline, and
events/s through the SDK end to end (until the broker acknowledged every event) next to the
bare produce's, with the ratio; and the CPU time this process spent per event on each side
(Python and librdkafka's threads), which depends less on how busy the machine is than
events/s do.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

from tokengov.app.bench.common import bench_broker, console, summarize_ns, table
from tokengov.core.contracts import (
    CallEvent,
    Components,
    TokenCounts,
    encode_events,
    new_event_id,
    utcnow,
)
from tokengov.core.kafka import connection
from tokengov.core.topics import EVENTS
from tokengov.producers.emitter import TokenEmitter

USAGE = {
    "prompt_tokens": 5200,
    "completion_tokens": 410,
    "prompt_tokens_details": {"cached_tokens": 3072},
    "completion_tokens_details": {"reasoning_tokens": 128},
}
COMPONENTS = {
    "system": 900,
    "tool_definitions": 1400,
    "retrieved": 1600,
    "history": 1100,
    "tool_responses": 200,
}


@dataclass
class SdkBenchResult:
    events: int
    baseline: dict[str, float]
    sdk: dict[str, float]
    sdk_events_per_s: float
    baseline_events_per_s: float
    sdk_cpu_us_per_event: float = 0.0
    baseline_cpu_us_per_event: float = 0.0

    @property
    def delivered_ratio(self) -> float:
        """Events/s delivered through the SDK over the bare produce's (target ≥ 0.45)."""
        return self.sdk_events_per_s / self.baseline_events_per_s

    @property
    def p99_ratio(self) -> float:
        return self.sdk["p99_us"] / self.baseline["p99_us"]

    @property
    def median_ratio(self) -> float:
        return self.sdk["median_us"] / self.baseline["median_us"]


def _sample_bytes(task_id: str, step: int) -> bytes:
    event = CallEvent(
        event_id=new_event_id(),
        ts=utcnow(),
        team="search",
        workflow="support-triage",
        task_id=task_id,
        agent="planner",
        step=step,
        provider="openai",
        model="gpt-4.1-mini",
        tokens=TokenCounts(input=5200, output=410, cached_input=3072, reasoning=128),
        components=Components(**COMPONENTS),
        tool_calls=1,
        tool_name="search_docs",
        latency_ms=850,
    )
    return encode_events([event])


def run(events: int, bootstrap: str | None) -> SdkBenchResult:
    with bench_broker(bootstrap) as servers:
        payloads = [
            (_sample_bytes(f"t-{i % 500}", i), f"t-{i % 500}".encode())
            for i in range(min(events, 5000))
        ]
        # ---- baseline: bare produce of the same bytes
        producer = Producer(
            {
                **connection(servers).librdkafka_config(),
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
                "linger.ms": 5,
            }
        )
        samples: list[int] = []
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(events):
            value, key = payloads[i % len(payloads)]
            t0 = time.perf_counter_ns()
            while True:
                try:
                    producer.produce(EVENTS, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.01)
            samples.append(time.perf_counter_ns() - t0)
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(60)
        baseline_rate = events / (time.perf_counter() - started)
        baseline_cpu_us = (time.process_time() - cpu_started) * 1e6 / events
        baseline = summarize_ns(samples)

        # ---- the SDK at the call site
        with tempfile.TemporaryDirectory(prefix="tokengov-bench-spool-") as spool:
            emitter = TokenEmitter(servers, spool_dir=Path(spool))
            tasks = [
                emitter.task(
                    team="search",
                    workflow="support-triage",
                    task_id=f"t-{i}",
                    agent="planner",
                    provider="openai",
                )
                for i in range(500)
            ]
            samples = []
            started, cpu_started = time.perf_counter(), time.process_time()
            for i in range(events):
                task = tasks[i % 500]
                t0 = time.perf_counter_ns()
                task.record(
                    USAGE,
                    model="gpt-4.1-mini",
                    components=COMPONENTS,
                    tool_calls=1,
                    tool_name="search_docs",
                    latency_ms=850,
                )
                samples.append(time.perf_counter_ns() - t0)
            emitter.close(timeout_s=120)
            sdk_rate = events / (time.perf_counter() - started)
            sdk_cpu_us = (time.process_time() - cpu_started) * 1e6 / events
            if emitter.stats.delivered != events or emitter.stats.invalid or emitter.stats.spooled:
                raise RuntimeError(
                    f"the SDK did not deliver every event: {emitter.stats.as_dict()}"
                )
        return SdkBenchResult(
            events,
            baseline,
            summarize_ns(samples),
            sdk_rate,
            baseline_rate,
            sdk_cpu_us,
            baseline_cpu_us,
        )


def report(result: SdkBenchResult) -> None:
    t = table(
        f"tokengov bench sdk — {result.events:,} events",
        ["", "median µs", "p99 µs", "p99.9 µs", "events/s", "CPU µs/event"],
    )
    b, s = result.baseline, result.sdk
    t.add_row(
        "bare confluent-kafka produce",
        f"{b['median_us']:.2f}",
        f"{b['p99_us']:.2f}",
        f"{b['p999_us']:.2f}",
        f"{result.baseline_events_per_s:,.0f}",
        f"{result.baseline_cpu_us_per_event:.2f}",
    )
    t.add_row(
        "SDK task.record (call site)",
        f"{s['median_us']:.2f}",
        f"{s['p99_us']:.2f}",
        f"{s['p999_us']:.2f}",
        f"{result.sdk_events_per_s:,.0f} (delivered)",
        f"{result.sdk_cpu_us_per_event:.2f}",
    )
    console.print(t)
    console.print(
        f"delivered: SDK {result.sdk_events_per_s:,.0f} events/s = "
        f"{result.delivered_ratio:.0%} of the bare produce's {result.baseline_events_per_s:,.0f} "
        f"(target ≥ 100,000 and ≥ 45 %); CPU per event: SDK "
        f"{result.sdk_cpu_us_per_event:.2f} µs vs bare {result.baseline_cpu_us_per_event:.2f} µs "
        f"({result.sdk_cpu_us_per_event / result.baseline_cpu_us_per_event:.1f}×)"
    )
    console.print(
        f"ratio SDK / bare produce: median {result.median_ratio:.2f}×, p99 {result.p99_ratio:.2f}× "
        f"(target ≤ 3×); SDK p99 at the call site {s['p99_us']:.1f} µs (target < 1000 µs)"
    )
