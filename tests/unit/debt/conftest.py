"""Shared builders for the debt unit tests: events by hand, and a one-detector engine."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tokengov.app.debt_fleet import fleet_policy_yaml
from tokengov.core.calls import from_model
from tokengov.core.contracts import CallEvent, Components, Outcome, TokenCounts
from tokengov.core.policy import Policy, parse_policy
from tokengov.streams.debt.detectors import Detector
from tokengov.streams.debt.engine import DebtEngine
from tokengov.streams.debt.findings import Finding

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
_ids = itertools.count()


def call(
    ts: datetime,
    *,
    task: str,
    agent: str = "agent",
    workflow: str = "wf",
    team: str = "search",
    step: int = 0,
    output: int = 300,
    cached: int = 0,
    attempt: int = 1,
    status: str = "ok",
    parent_agent: str | None = None,
    tool_name: str | None = None,
    latency_ms: int = 500,
    **components: int,
) -> CallEvent:
    comps = Components(**components)
    return CallEvent(
        event_id=f"e{next(_ids)}",
        ts=ts,
        team=team,
        workflow=workflow,
        task_id=task,
        agent=agent,
        parent_agent=parent_agent,
        step=step,
        model="gpt-4.1-mini",
        tokens=TokenCounts(input=comps.total + 200, output=output, cached_input=cached),
        components=comps,
        attempt=attempt,
        status=status,
        tool_name=tool_name,
        tool_calls=1 if tool_name else 0,
        latency_ms=latency_ms,
    )


def outcome(ts: datetime, task: str, workflow: str = "wf", team: str = "search") -> Outcome:
    return Outcome(
        event_id=f"o{next(_ids)}",
        ts=ts,
        team=team,
        workflow=workflow,
        task_id=task,
        status="success",
        quality=0.9,
    )


def tasks(
    n: int,
    per_task: Callable[[int, datetime], Iterable[CallEvent | Outcome]],
    *,
    span: timedelta = timedelta(minutes=50),
    start: datetime = T0,
) -> list[CallEvent | Outcome]:
    """``n`` tasks spread evenly over ``span``; ``per_task(i, begin)`` yields each one's events."""
    out: list[CallEvent | Outcome] = []
    for i in range(n):
        out.extend(per_task(i, start + span * i / n))
    return sorted(out, key=lambda e: e.ts)


@pytest.fixture
def policy() -> Policy:
    return parse_policy(fleet_policy_yaml())


def run_engine(
    policy: Policy,
    events: Sequence[CallEvent | Outcome],
    detector: Detector | None = None,
    **kwargs: Any,
) -> list[Finding]:
    end = max(e.ts for e in events)
    engine = DebtEngine(
        policy, clock=lambda: end, detectors=[detector] if detector is not None else None, **kwargs
    )
    for event in events:
        engine.observe(from_model(event))
    return engine.flush(end).findings


class Kit:
    """The builders above, handed to tests as a fixture (test modules cannot import conftest)."""

    T0 = T0
    call = staticmethod(call)
    outcome = staticmethod(outcome)
    tasks = staticmethod(tasks)
    run = staticmethod(run_engine)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
