"""Each detector fires on its wasteful pattern and stays quiet on the same workload designed
well: the scripted fleet's twins, plus the edge cases of each waste model."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokengov.app.debt_fleet import PATTERNS, scripted_fleet
from tokengov.core.calls import from_model
from tokengov.core.contracts import CallEvent
from tokengov.streams.debt.detectors import (
    FullContextHandoff,
    HistoryResend,
    MemoryReplay,
    RetrievalWaste,
    RetryWithoutBackoff,
    SystemPromptGrowth,
    ToolDefinitionBloat,
    ToolResponseBloat,
    all_detectors,
)
from tokengov.streams.debt.engine import DebtEngine

FLEET = scripted_fleet(tasks_per_pattern=30, prompt_tasks_per_day=60)
BY_NAME = {d.name: d for d in all_detectors()}


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.detector)
def test_fires_on_waste_and_quiet_on_the_twin(pattern, policy, kit) -> None:
    detector = BY_NAME[pattern.detector]
    wasteful = [e for e in FLEET.events if e.workflow == pattern.wasteful]
    twin = [e for e in FLEET.events if e.workflow == pattern.twin]
    fired = kit.run(policy, wasteful, detector)
    assert [(f.workflow, f.detector, f.area) for f in fired] == [
        (pattern.wasteful, pattern.detector, pattern.area)
    ]
    finding = fired[0]
    actual = FLEET.actual_waste_tokens_per_day(pattern.wasteful)
    assert abs(finding.estimated_waste_tokens_per_day - actual) <= 0.25 * actual
    assert finding.estimated_waste_usd_per_day > 0
    assert 0 < finding.confidence <= 1
    assert finding.team == pattern.team
    assert kit.run(policy, twin, detector) == []


def test_no_detector_fires_outside_its_pattern(policy) -> None:
    engine = DebtEngine(policy, clock=lambda: FLEET.end)
    for event in FLEET.events:
        engine.observe(from_model(event))
    fired = {(f.workflow, f.detector) for f in engine.flush(FLEET.end).findings}
    assert fired == {(p.wasteful, p.detector) for p in PATTERNS}


# ----------------------------------------------------------------- edge cases


def test_history_served_from_cache_is_not_flagged(policy, kit) -> None:
    def task(i, t0, cache_share):
        for turn in range(8):
            history = 700 * turn
            yield kit.call(
                t0 + timedelta(seconds=5 * turn),
                task=f"t{i}",
                step=turn,
                system=800,
                history=history,
                cached=int((history + 800) * cache_share),
            )

    resend = kit.tasks(30, lambda i, t0: task(i, t0, 0.0))
    cached = kit.tasks(30, lambda i, t0: task(i, t0, 0.9))
    assert kit.run(policy, resend, HistoryResend())
    assert kit.run(policy, cached, HistoryResend()) == []


def test_history_waste_is_the_excess_over_the_bounded_history(policy, kit) -> None:
    budget = policy.debt.history_budget_tokens
    events = kit.tasks(
        30,
        lambda i, t0: (
            kit.call(t0 + timedelta(seconds=turn), task=f"t{i}", step=turn, history=1000 * turn)
            for turn in range(5)
        ),
    )
    [finding] = kit.run(policy, events, HistoryResend())
    excess_per_task = sum(max(0, 1000 * turn - budget) for turn in range(5))
    span = max(e.ts for e in events) - min(e.ts for e in events)
    expected = 30 * excess_per_task * timedelta(days=1) / span
    assert finding.estimated_waste_tokens_per_day == pytest.approx(expected, rel=1e-6)


def test_retries_with_backoff_within_the_bound_are_fine(policy, kit) -> None:
    def chain(i, t0, gaps, statuses):
        t = t0
        for attempt, status in enumerate(statuses, 1):
            yield kit.call(
                t,
                task=f"t{i}",
                step=1,
                attempt=attempt,
                status=status,
                history=2000,
                latency_ms=500,
            )
            if attempt <= len(gaps):
                t += timedelta(milliseconds=500) + timedelta(seconds=gaps[attempt - 1])
        for step in (2, 3, 4):
            yield kit.call(t + timedelta(seconds=step * 3), task=f"t{i}", step=step)

    backoff = kit.tasks(20, lambda i, t0: chain(i, t0, [1, 2, 4], ["error"] * 3 + ["ok"]))
    assert kit.run(policy, backoff, RetryWithoutBackoff()) == []
    immediate = kit.tasks(20, lambda i, t0: chain(i, t0, [0.05] * 3, ["error"] * 3 + ["ok"]))
    [finding] = kit.run(policy, immediate, RetryWithoutBackoff())
    assert finding.evidence["chains_without_backoff"] == 20
    # only the failed retries (attempts 2 and 3) are waste, not the first try or the success
    per_retry = 2200 + 300
    assert finding.evidence["wasted_retry_tokens"] == 20 * 2 * per_retry


def test_retries_with_backoff_beyond_the_bound_waste_the_excess(policy, kit) -> None:
    def chain(i, t0):
        t = t0
        for attempt in range(1, 8):  # 6 retries, bound 3, growing gaps, all failing
            yield kit.call(t, task=f"t{i}", step=1, attempt=attempt, status="error", latency_ms=100)
            t += timedelta(milliseconds=100) + timedelta(seconds=2**attempt)
        for step in (2, 3, 4):
            yield kit.call(t + timedelta(seconds=step), task=f"t{i}", step=step)

    [finding] = kit.run(policy, kit.tasks(10, chain), RetryWithoutBackoff())
    assert finding.evidence["chains_without_backoff"] == 0
    assert finding.evidence["chains_over_bound"] == 10
    assert finding.evidence["wasted_retry_tokens"] == 10 * 3 * (200 + 300)  # attempts 5, 6, 7


def test_small_repeated_retrieval_and_within_budget_is_fine(policy, kit) -> None:
    small = kit.tasks(
        30,
        lambda i, t0: (
            kit.call(t0 + timedelta(seconds=s), task=f"t{i}", step=s, retrieved=300)
            for s in range(4)
        ),
    )
    assert kit.run(policy, small, RetrievalWaste()) == []
    oversized = kit.tasks(
        30,
        lambda i, t0: (
            kit.call(t0 + timedelta(seconds=s), task=f"t{i}", step=s, retrieved=9000 + 10 * s)
            for s in range(4)
        ),
    )
    [finding] = kit.run(policy, oversized, RetrievalWaste())
    assert finding.evidence["oversized_retrievals"] == 120
    assert finding.evidence["repeated_retrievals"] == 0


def test_tool_definitions_of_many_used_tools_are_needed(policy, kit) -> None:
    tools = [f"tool{n}" for n in range(10)]
    events = kit.tasks(
        30,
        lambda i, t0: (
            kit.call(
                t0 + timedelta(seconds=s),
                task=f"t{i}",
                step=s,
                tool_name=tools[(i + s) % 10],
                tool_definitions=1400,
                system=800,
            )
            for s in range(3)
        ),
    )
    assert kit.run(policy, events, ToolDefinitionBloat()) == []


def test_small_handoff_relative_to_the_sender_is_fine(policy, kit) -> None:
    def task(i, t0, handoff):
        yield kit.call(t0, task=f"t{i}", agent="planner", retrieved=3000, history=2000)
        for s in (1, 2):
            yield kit.call(
                t0 + timedelta(seconds=s),
                task=f"t{i}",
                agent="writer",
                step=s,
                parent_agent="planner",
                handoff=handoff,
            )

    assert (
        kit.run(policy, kit.tasks(20, lambda i, t0: task(i, t0, 900)), FullContextHandoff()) == []
    )
    fired = kit.run(policy, kit.tasks(20, lambda i, t0: task(i, t0, 5000)), FullContextHandoff())
    assert [f.agent for f in fired] == ["writer"]


def test_handoff_without_the_senders_calls_is_not_judged(policy, kit) -> None:
    events = kit.tasks(
        20,
        lambda i, t0: (
            kit.call(
                t0 + timedelta(seconds=s),
                task=f"t{i}",
                agent="writer",
                step=s,
                parent_agent="planner",
                handoff=5000,
            )
            for s in range(3)
        ),
    )
    assert kit.run(policy, events, FullContextHandoff()) == []


def test_large_memory_once_per_task_is_not_replay(policy, kit) -> None:
    events = kit.tasks(
        30,
        lambda i, t0: (
            kit.call(t0 + timedelta(seconds=s), task=f"t{i}", step=s, memory=5000 if s == 0 else 0)
            for s in range(4)
        ),
    )
    assert kit.run(policy, events, MemoryReplay()) == []


def test_large_tool_responses_that_produce_large_output_are_fine(policy, kit) -> None:
    events = kit.tasks(
        30,
        lambda i, t0: (
            kit.call(
                t0 + timedelta(seconds=s),
                task=f"t{i}",
                step=s,
                tool_responses=6000,
                output=800,
                tool_name="fetch",
            )
            for s in range(3)
        ),
    )
    assert kit.run(policy, events, ToolResponseBloat()) == []


def _daily(kit, days, system_of_day):
    out = []
    for day in range(days):
        out += kit.tasks(
            20,
            lambda i, t0, d=day: (
                kit.call(
                    t0 + timedelta(seconds=s), task=f"d{d}t{i}", step=s, system=system_of_day(d)
                )
                for s in range(2)
            ),
            span=timedelta(hours=20),
            start=kit.T0 + timedelta(days=day),
        )
    return out


def test_system_prompt_stable_across_days_is_fine(policy, kit) -> None:
    assert kit.run(policy, _daily(kit, 5, lambda d: 2000), SystemPromptGrowth()) == []


def test_system_prompt_growth_needs_enough_days(policy, kit) -> None:
    assert kit.run(policy, _daily(kit, 2, lambda d: 2000 + 500 * d), SystemPromptGrowth()) == []
    [finding] = kit.run(policy, _daily(kit, 4, lambda d: 2000 + 1500 * d), SystemPromptGrowth())
    assert finding.agent is None
    assert finding.evidence["system_tokens_per_call_last_day"] == 6500
    assert finding.estimated_waste_tokens_per_day == 4500 * 40  # excess per call × calls/day


def test_fleet_events_are_valid_contract_events() -> None:
    assert all(isinstance(e, CallEvent) or e.kind == "outcome" for e in FLEET.events)
    assert len({e.event_id for e in FLEET.events}) == len(FLEET.events)
