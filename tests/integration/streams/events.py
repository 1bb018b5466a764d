"""Scripted events for the integration tests (plain JSON dicts, as any producer would send)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

_seq = itertools.count()

POLICY = """
version: 1
teams:
  search: {owner: search@example.com}
  research: {owner: research@example.com}
receivers:
  console: {type: log}
prices:
  gpt-4.1-mini: {input: 0.40, output: 1.60, cached_input: 0.10}
cost_profiles:
  support-triage:
    team: search
    baseline_tokens: 1000
    max_tool_calls: 5
    max_retries: 3
    max_same_tool_calls: 4
    quality_bar: 0.8
    on_runaway: pause
    decision_ttl: 10m
  doc-qa:
    team: search
    max_tool_calls: 3
    on_runaway: fallback
    fallback_model: gpt-4.1-mini
budgets:
  - {scope: team, name: research, period: day, limit_usd: 1, thresholds: [0.5, 1.0],
     forecast: false}
routes: {receiver: console}
streams:
  window_idle_close: 1s
  unit_metrics_interval: 1s
"""


def now() -> datetime:
    return datetime.now(UTC)


def call(task: str, *, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "call",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": (at or now()).isoformat().replace("+00:00", "Z"),
        "team": "search",
        "workflow": "support-triage",
        "task_id": task,
        "agent": "planner",
        "step": next(_seq),
        "model": "gpt-4.1-mini",
        "tokens": {"input": 1000, "output": 100},
        "tool_calls": 0,
    }
    doc.update(fields)
    return doc


def outcome(
    task: str, status: str = "success", quality: float = 0.9, **fields: Any
) -> dict[str, Any]:
    doc = {
        "kind": "outcome",
        "event_id": str(uuid.uuid4()),
        "ts": now().isoformat().replace("+00:00", "Z"),
        "team": "search",
        "workflow": "support-triage",
        "task_id": task,
        "status": status,
        "quality": quality,
    }
    doc.update(fields)
    return doc


def tool_calls(task: str, n: int, **fields: Any) -> list[dict[str, Any]]:
    return [call(task, tool_calls=1, **fields) for _ in range(n)]


def retries(task: str, step: int, n: int, gap_s: float = 1.0) -> list[dict[str, Any]]:
    start = now() - timedelta(seconds=n * gap_s)
    return [
        call(task, step=step, attempt=i + 1, at=start + timedelta(seconds=i * gap_s))
        for i in range(n)
    ]
