"""``tokengov bench stages``: the worker's three per-event stages in one process, no broker.

``bench streams`` measures the whole worker against a real broker, so its figure moves
with everything else on the machine (the broker and the producer share the cores). This
one runs only what ``--role streams`` does with each message's bytes — the one decode
(:func:`tokengov.core.decoding.decode_events`), governance's stage 1
(:meth:`~tokengov.streams.core.PartitionProcessor.process_batch`, then its state records
and partials at each flush) and token debt's stage 1
(:meth:`~tokengov.streams.debt.engine.DebtTallies.observe_all`, then ``take``) — over the
same mix as ``bench streams`` (200-event envelopes, 8 partitions, seed 7), and times each
stage with the thread's CPU clock. The baseline is a bare ``orjson.loads`` of the same
bytes. Best of ``repeat`` passes (each from fresh state), so two interpreters or two
builds can be compared on one machine within a few per cent.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from tokengov.app.bench.workload import BENCH_POLICY, Workload, envelopes
from tokengov.core.decoding import decode_events
from tokengov.core.policy import Policy, parse_policy
from tokengov.core.process_tuning import raise_gc_thresholds
from tokengov.streams.core import Output, PartitionProcessor
from tokengov.streams.core.clock import SystemClock
from tokengov.streams.core.policy_index import PolicyView
from tokengov.streams.debt.engine import DebtTallies
from tokengov.streams.partition_stage import GC_THRESHOLDS

__all__ = ["STAGES", "StagesBench", "run"]

#: What is timed, in the order a message goes through them.
STAGES = ("decode", "governance", "debt")
#: Messages of a partition between two flushes: stage 1 flushes every 0.5 s, which at
#: ~80,000 events/s over 8 partitions is ~25 envelopes of 200 events each.
FLUSH_EVERY_MESSAGES = 25


@dataclass
class StagesBench:
    events: int = 0
    messages: int = 0
    #: stage → its CPU seconds in the best pass (the pass with the least total)
    cpu_s: dict[str, float] = field(default_factory=dict)
    baseline_cpu_s: float = 0.0  # orjson.loads of every message, best pass
    #: what the last pass took in: events the decoder refused (0 for the mix), alerts raised
    decode_failures: int = 0
    alerts: int = 0
    governed: int = 0  # events governance applied (the mix has no duplicates)
    debt_taken: int = 0  # events token debt took (neither duplicates nor too old)

    def us_per_event(self, stage: str) -> float:
        return self.cpu_s[stage] * 1e6 / self.events if self.events else 0.0

    @property
    def total_us_per_event(self) -> float:
        return sum(self.us_per_event(s) for s in STAGES)

    @property
    def baseline_us_per_event(self) -> float:
        return self.baseline_cpu_s * 1e6 / self.events if self.events else 0.0


def run(
    *,
    tasks: int = 20_000,
    partitions: int = 8,
    seed: int = 7,
    repeat: int = 3,
    progress: Callable[[str], None] | None = None,
) -> StagesBench:
    policy = parse_policy(BENCH_POLICY, source="bench policy")
    view = PolicyView(policy)
    per_partition = Workload(seed, partitions).by_partition(tasks, datetime.now(UTC))
    messages = {p: [value for _, value in envelopes(events)] for p, events in per_partition.items()}
    result = StagesBench(
        events=sum(len(events) for events in per_partition.values()),
        messages=sum(len(values) for values in messages.values()),
    )
    thresholds = gc.get_threshold()
    raise_gc_thresholds(*GC_THRESHOLDS)  # as the worker does (tokengov.streams.role)
    try:
        best: dict[str, float] | None = None
        for n in range(repeat):
            if progress is not None:
                progress(f"pass {n + 1} of {repeat}")
            cpu = _pass(messages, policy, view, result)
            if best is None or sum(cpu.values()) < sum(best.values()):
                best = cpu
            baseline = _baseline(messages)
            if n == 0 or baseline < result.baseline_cpu_s:
                result.baseline_cpu_s = baseline
        result.cpu_s = best or {}
    finally:
        gc.set_threshold(*thresholds)
    return result


def _pass(
    messages: dict[int, list[bytes]], policy: Policy, view: PolicyView, result: StagesBench
) -> dict[str, float]:
    """One pass over every partition's messages from fresh state: each stage's CPU seconds."""
    clock = SystemClock()
    cpu = dict.fromkeys(STAGES, 0.0)
    now = time.thread_time
    failures = alerts = governed = taken = 0
    gc.collect()
    for partition, values in messages.items():
        proc = PartitionProcessor(partition, view.settings, clock)
        debt = DebtTallies(policy)
        out = Output()
        for offset, raw in enumerate(values):
            t0 = now()
            decoded = decode_events(raw)
            t1 = now()
            proc.begin()
            proc.process_batch(decoded.events, offset, view, out)
            t2 = now()
            taken += debt.observe_all(event for _, event in decoded.events)
            t3 = now()
            flush = offset % FLUSH_EVERY_MESSAGES == FLUSH_EVERY_MESSAGES - 1
            flush = flush or offset == len(values) - 1
            if flush:
                proc.agg.take_partial()
                proc.agg.expire()
                proc.take_records()
            t4 = now()
            if flush:
                debt.take()
            t5 = now()
            cpu["decode"] += t1 - t0
            cpu["governance"] += t2 - t1 + t4 - t3
            cpu["debt"] += t3 - t2 + t5 - t4
            failures += len(decoded.failures)
            alerts += len(out.alerts)
            out.alerts.clear()
            out.decisions.clear()
            out.metrics.clear()
        governed += proc.events_applied
    result.decode_failures, result.alerts = failures, alerts
    result.governed, result.debt_taken = governed, taken
    return cpu


def _baseline(messages: dict[int, list[bytes]]) -> float:
    loads = orjson.loads
    start = time.thread_time()
    for values in messages.values():
        for raw in values:
            loads(raw)
    return time.thread_time() - start
