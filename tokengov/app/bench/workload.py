"""A realistic event mix for the streams benchmark (deterministic for a seed).

Tasks of 3–12 calls across several workflows and agents (planner → researcher
/ writer handoffs), cached and reasoning tokens, a few retries and errors,
2 % unattributed calls, a workflow without a cost profile, a rare unpriced
model, and an outcome per task. Normal tasks stay inside their cost profiles;
*probe* tasks are built to cross ``max_tool_calls`` on a chosen call.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

__all__ = ["BENCH_POLICY", "Workload", "partition_of"]

BENCH_POLICY = """
version: 1
teams:
  search: {owner: search@example.com}
  support: {owner: support@example.com}
  research: {owner: research@example.com}
receivers:
  console: {type: log}
prices:
  gpt-4.1: {input: 2.00, output: 8.00, cached_input: 0.50}
  gpt-4.1-mini: {input: 0.40, output: 1.60, cached_input: 0.10}
  o4-mini: {input: 1.10, output: 4.40, cached_input: 0.275}
  claude-sonnet-4: {input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75}
cost_profiles:
  support-triage: {team: search, baseline_tokens: 4000, max_context_tokens: 64000,
                   max_tool_calls: 12, max_hops: 4, max_retries: 5, max_tokens_per_task: 400000,
                   quality_bar: 0.8, on_runaway: pause}
  doc-qa: {team: search, baseline_tokens: 3000, max_tool_calls: 12, max_hops: 4,
           max_retries: 5, quality_bar: 0.7, on_runaway: fallback, fallback_model: gpt-4.1-mini}
  ticket-summary: {team: support, baseline_tokens: 2500, max_tool_calls: 12, max_retries: 5,
                   quality_bar: 0.75, on_runaway: throttle}
  deep-research: {team: research, baseline_tokens: 8000, max_tool_calls: 30, max_retries: 5,
                  quality_bar: 0.8, on_runaway: pause}
budgets:
  - {scope: team, name: search, period: day, limit_usd: 100000}
  - {scope: team, name: research, period: day, limit_usd: 100000}
  - {scope: workflow, name: support-triage, period: month, limit_tokens: 100000000000}
routes: {receiver: console}
"""

WORKFLOWS = [
    ("search", "support-triage", 0.35),
    ("search", "doc-qa", 0.25),
    ("support", "ticket-summary", 0.2),
    ("research", "deep-research", 0.15),
    ("support", "triage-v2-experiment", 0.05),  # no cost profile
]
MODELS = ["gpt-4.1", "gpt-4.1-mini", "o4-mini", "claude-sonnet-4"]
TOOLS = ["search_docs", "read_ticket", "run_sql", "fetch_url"]


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class Workload:
    def __init__(self, seed: int, partitions: int) -> None:
        self.rng = random.Random(seed)
        self.partitions = partitions
        self._task = 0

    def _ts(self, when: datetime) -> str:
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def task(self, start: datetime) -> list[dict[str, Any]]:
        """One ordinary task: calls then an outcome."""
        rng = self.rng
        self._task += 1
        task_id = f"task-{self._task}-{uuid.uuid4().hex[:8]}"
        r = rng.random()
        acc = 0.0
        team, workflow = WORKFLOWS[-1][:2]
        for t, w, share in WORKFLOWS:
            acc += share
            if r < acc:
                team, workflow = t, w
                break
        unattributed = rng.random() < 0.02
        model = rng.choice(MODELS)
        if rng.random() < 0.002:
            model = "gpt-5-preview"  # no price in the policy
        events: list[dict[str, Any]] = []
        when = start
        tool_budget = 10
        for step in range(rng.randint(3, 12)):
            agent, parent = "planner", None
            if step > 0 and rng.random() < 0.3:
                agent, parent = rng.choice(["researcher", "writer"]), "planner"
            attempts = 1 + (rng.random() < 0.03) + (rng.random() < 0.01)
            for attempt in range(1, attempts + 1):
                inp = rng.randint(800, 12000)
                cached = rng.randint(0, inp // 2)
                out = rng.randint(50, 1500)
                tools = 1 if tool_budget > 0 and rng.random() < 0.5 else 0
                tool_budget -= tools
                events.append(
                    {
                        "kind": "call",
                        "schema_version": 1,
                        "event_id": str(uuid.uuid4()),
                        "ts": self._ts(when),
                        "team": None if unattributed else team,
                        "workflow": None if unattributed else workflow,
                        "task_id": task_id,
                        "agent": agent,
                        "parent_agent": parent,
                        "step": step,
                        "provider": "openai" if model.startswith(("gpt", "o4")) else "anthropic",
                        "model": model,
                        "tokens": {
                            "input": inp,
                            "output": out,
                            "cached_input": cached,
                            "cache_write": 0,
                            "reasoning": out // 3 if model == "o4-mini" else 0,
                        },
                        "components": {
                            "system": min(400, inp - cached),
                            "tool_definitions": 0,
                            "retrieved": 0,
                            "history": 0,
                            "tool_responses": 0,
                            "handoff": 0,
                            "memory": 0,
                        },
                        "attempt": attempt,
                        "tool_calls": tools,
                        "tool_name": rng.choice(TOOLS) if tools else None,
                        "latency_ms": rng.randint(200, 4000),
                        "status": "error" if rng.random() < 0.01 else "ok",
                        "cost_usd": None,
                        "context_window": 128000 if rng.random() < 0.5 else None,
                    }
                )
                when += timedelta(milliseconds=rng.randint(50, 2000) * attempt)
        events.append(
            {
                "kind": "outcome",
                "schema_version": 1,
                "event_id": str(uuid.uuid4()),
                "ts": self._ts(when),
                "team": None if unattributed else team,
                "workflow": None if unattributed else workflow,
                "task_id": task_id,
                "status": "success" if rng.random() < 0.85 else "failure",
                "quality": round(rng.uniform(0.5, 1.0), 3),
            }
        )
        return events

    def probe(self, task_id: str, when: datetime, calls: int = 13) -> list[dict[str, Any]]:
        """A support-triage task whose ``calls``-th tool call crosses max_tool_calls (12)."""
        return [
            {
                "kind": "call",
                "event_id": str(uuid.uuid4()),
                "ts": self._ts(when),
                "team": "search",
                "workflow": "support-triage",
                "task_id": task_id,
                "agent": "planner",
                "step": i,
                "model": "gpt-4.1-mini",
                "tokens": {"input": 1000, "output": 100},
                "tool_calls": 1,
                "tool_name": "search_docs",
            }
            for i in range(calls)
        ]

    def by_partition(
        self, tasks: int, start: datetime, concurrent: int = 20
    ) -> dict[int, list[dict[str, Any]]]:
        """The events of ``tasks`` tasks in order per partition, ``concurrent`` at a time."""
        out: dict[int, list[dict[str, Any]]] = {p: [] for p in range(self.partitions)}
        for _ in range(0, tasks, concurrent):
            group = [self.task(start) for _ in range(concurrent)]
            for events in _interleave(group, self.rng):
                out[partition_of(events["task_id"], self.partitions)].append(events)
        return out


def _interleave(tasks: list[list[dict[str, Any]]], rng: random.Random) -> Iterator[dict[str, Any]]:
    cursors = [iter(t) for t in tasks]
    while cursors:
        i = rng.randrange(len(cursors))
        try:
            yield next(cursors[i])
        except StopIteration:
            cursors.pop(i)


def envelopes(events: list[dict[str, Any]], size: int = 200) -> list[tuple[bytes, bytes]]:
    """(key, batch envelope) of at most ``size`` events of one partition each."""
    return [
        (events[i]["task_id"].encode(), orjson.dumps(events[i : i + size]))
        for i in range(0, len(events), size)
    ]
