"""Scripted event sequences for the stream-processor tests (no I/O)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from tokengov.core.calls import from_model
from tokengov.core.contracts import Alert, CallEvent, Decision, Outcome
from tokengov.core.policy import Policy, parse_policy
from tokengov.streams.core import (
    Aggregator,
    ManualClock,
    Output,
    PartitionProcessor,
    PolicyView,
    codec,
    position,
)

T0 = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
_ids = itertools.count(1)

POLICY = """
version: 1
teams:
  search: {owner: search@example.com}
  research: {owner: research@example.com}
receivers:
  console: {type: log}
prices:
  gpt-4.1-mini: {input: 0.40, output: 1.60, cached_input: 0.10}
  claude-sonnet-4: {input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75}
cost_profiles:
  support-triage:
    team: search
    baseline_tokens: 4000
    max_calls: 20
    max_context_tokens: 16000
    max_tool_calls: 12
    max_hops: 4
    max_retries: 3
    max_tokens_per_task: 60000
    max_same_tool_calls: 5
    quality_bar: 0.8
    on_runaway: pause
    decision_ttl: 30m
  deep-research:
    team: research
    max_tool_calls: 30
    on_runaway: proceed
budgets:
  - {scope: team, name: search, period: day, limit_usd: 10, thresholds: [0.5, 0.8, 1.0],
     on_breach: throttle}
  - {scope: workflow, name: support-triage, period: month, limit_tokens: 1000000, forecast: false}
routes: {receiver: console}
streams:
  late_grace: 30s
  forecast_min_elapsed: 15m
  window_idle_close: 30s
"""


def policy(text: str = POLICY) -> Policy:
    return parse_policy(text)


def call(
    task: str = "t-1",
    *,
    at: float = 0.0,
    team: str | None = "search",
    workflow: str | None = "support-triage",
    agent: str = "planner",
    parent: str | None = None,
    step: int = 0,
    attempt: int = 1,
    model: str = "gpt-4.1-mini",
    input: int = 1000,
    output: int = 100,
    cached: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    reasoning: int = 0,
    tool_calls: int = 0,
    tool: str | None = None,
    status: str = "ok",
    cost: str | None = None,
    context_window: int | None = None,
    event_id: str | None = None,
    service_tier: str | None = None,
    usage_missing: bool = False,
) -> CallEvent:
    """One call ``at`` seconds after T0."""
    return CallEvent.model_validate(
        {
            "event_id": event_id or f"e-{next(_ids)}",
            "ts": T0 + timedelta(seconds=at),
            "team": team,
            "workflow": workflow,
            "task_id": task,
            "agent": agent,
            "parent_agent": parent,
            "step": step,
            "attempt": attempt,
            "model": model,
            "tokens": {
                "input": input,
                "output": output,
                "cached_input": cached,
                "cache_write": cache_write,
                "cache_write_1h": cache_write_1h,
                "reasoning": reasoning,
            },
            "tool_calls": tool_calls,
            "tool_name": tool,
            "status": status,
            "cost_usd": cost,
            "context_window": context_window,
            "service_tier": service_tier,
            "usage_missing": usage_missing,
        }
    )


def outcome(
    task: str = "t-1",
    *,
    at: float = 0.0,
    status: str = "success",
    quality: float | None = 0.9,
    team: str = "search",
    workflow: str = "support-triage",
    event_id: str | None = None,
) -> Outcome:
    return Outcome.model_validate(
        {
            "event_id": event_id or f"o-{next(_ids)}",
            "ts": T0 + timedelta(seconds=at),
            "team": team,
            "workflow": workflow,
            "task_id": task,
            "status": status,
            "quality": quality,
        }
    )


@dataclass
class Pipeline:
    """Stage 1 (some partitions) feeding stage 2, with a manual clock."""

    view: PolicyView
    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))
    partitions: dict[int, PartitionProcessor] = field(default_factory=dict)
    aggregator: Aggregator | None = None
    offsets: dict[int, int] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    out: Output = field(default_factory=Output)

    @classmethod
    def of(cls, text: str = POLICY) -> Pipeline:
        return cls(PolicyView(policy(text)))

    def proc(self, partition: int = 0) -> PartitionProcessor:
        if partition not in self.partitions:
            self.partitions[partition] = PartitionProcessor(
                partition, self.view.settings, self.clock
            )
        return self.partitions[partition]

    def agg(self) -> Aggregator:
        if self.aggregator is None:
            self.aggregator = Aggregator(self.clock)
        return self.aggregator

    def feed(
        self,
        *events: CallEvent | Outcome,
        partition: int = 0,
        envelope: bool = False,
        clock_follows: bool = True,
    ) -> None:
        """Each event is its own message (or all one envelope), at the next offsets. Events
        happen before they are processed: the clock moves up to the latest event time, unless
        ``clock_follows`` is False (a producer's clock running ahead)."""
        latest = max(e.ts for e in events)
        if clock_follows and latest > self.clock.now():
            self.clock.set(latest)
        proc = self.proc(partition)
        proc.begin()
        if envelope:
            offset = self.offsets.get(partition, 0)
            self.offsets[partition] = offset + 1
            for index, event in enumerate(events):
                proc.process(from_model(event), position(offset, index), self.view, self.out)
        else:
            for event in events:
                offset = self.offsets.get(partition, 0)
                self.offsets[partition] = offset + 1
                proc.process(from_model(event), position(offset, 0), self.view, self.out)
        self._collect()

    def flush(self, tick: bool = True) -> None:
        """Ship every partition's partials to stage 2 (and tick it)."""
        for proc in self.partitions.values():
            partial = proc.agg.take_partial()
            if partial is not None:  # through JSON, as on the partials topic
                self.agg().apply(orjson.loads(codec.dumps(partial)), self.view, self.out)
            proc.agg.expire()
        if tick:
            self.agg().tick(self.view, self.out)
        self._collect()

    def _collect(self) -> None:
        self.alerts.extend(self.out.alerts)
        self.decisions.extend(d for d, _ in self.out.decisions)
        self.metrics.extend(doc for _, doc in self.out.metrics)
        self.out.clear()

    def kinds(self, kind: str) -> list[Alert]:
        return [a for a in self.alerts if a.kind == kind]

    def metric(self, metric: str, **match: Any) -> list[dict[str, Any]]:
        return [
            m
            for m in self.metrics
            if m["metric"] == metric and all(m.get(k) == v for k, v in match.items())
        ]


def money(value: str) -> Decimal:
    return Decimal(value)
