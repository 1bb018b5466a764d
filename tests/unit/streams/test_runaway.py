"""Runaway detection: each limit of the cost profile fires once, the moment it is crossed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.streams.builders import POLICY, Pipeline, call


def _crossing_sequences():
    """limit name → (calls that stay at the limit, the call that crosses it, observed, limit)."""
    return {
        "max_calls": ([call(step=i) for i in range(20)], call(step=20), 21, 20),
        "max_tool_calls": (
            [call(step=i, tool_calls=3) for i in range(4)],
            call(step=4, tool_calls=1),
            13,
            12,
        ),
        "max_hops": (
            [call(agent=f"sub{i}", parent="planner", step=i) for i in range(4)]
            + [call(agent="sub0", parent="planner", step=5)],  # the same handoff again
            call(agent="sub4", parent="planner", step=6),
            5,
            4,
        ),
        "max_retries": (
            [call(step=i, attempt=1) for i in range(3)]
            + [call(step=i, attempt=2, at=10 * i) for i in range(3)],
            call(step=3, attempt=2),
            4,
            3,
        ),
        "max_tokens_per_task": (
            [call(step=i, input=9000, output=1000) for i in range(6)],
            call(step=6, input=1, output=0),
            60001,
            60000,
        ),
        "max_context_tokens": (
            [call(step=0, input=16000, output=10)],
            call(step=1, input=16001, output=10),
            16001,
            16000,
        ),
    }


@pytest.mark.parametrize("limit", list(_crossing_sequences()))
def test_each_limit_fires_once_when_crossed(limit: str) -> None:
    before, crossing, observed, allowed = _crossing_sequences()[limit]
    pipe = Pipeline.of()
    pipe.feed(*before)
    assert [a for a in pipe.kinds("runaway") if a.labels["limit"] == limit] == []

    pipe.feed(crossing)
    fired = [a for a in pipe.kinds("runaway") if a.labels["limit"] == limit]
    assert len(fired) == 1
    alert = fired[0]
    assert alert.fingerprint == f"runaway|search|support-triage|t-1|{limit}"
    assert alert.evidence["observed"] == observed
    assert alert.evidence["limit"] == allowed
    assert alert.evidence["event_id"] == crossing.event_id
    assert alert.severity == "critical"
    assert alert.task_id == "t-1" and alert.team == "search"
    assert f"allows {allowed:,}" in alert.summary
    assert alert.starts_at == crossing.ts

    # more of the same: still exactly one alert for this limit
    pipe.feed(*[call(step=30 + i, tool_calls=2, input=20000, attempt=2) for i in range(3)])
    assert len([a for a in pipe.kinds("runaway") if a.labels["limit"] == limit]) == 1


def test_tool_call_summary_reads_like_design() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(step=i, tool_calls=1) for i in range(13)])
    (alert,) = [a for a in pipe.kinds("runaway") if a.labels["limit"] == "max_tool_calls"]
    assert alert.summary == "task t-1 made 13 tool calls; its cost profile allows 12"


def test_pause_decision_names_the_limit_and_expires_after_the_ttl() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(step=i, tool_calls=1) for i in range(13)])
    (decision,) = pipe.decisions
    assert decision.scope == "task" and decision.key == "t-1"
    assert decision.action == "pause"
    assert decision.reason == "runaway: max_tool_calls 13 > 12"
    assert decision.expires_at - decision.issued_at == timedelta(minutes=30)
    assert decision.issued_at == pipe.clock.now()


@pytest.mark.parametrize(
    ("action", "extra", "check"),
    [
        ("throttle", "    throttle: 1500ms\n", lambda d: d.throttle_ms == 1500),
        (
            "fallback",
            "    fallback_model: gpt-4.1-mini\n",
            lambda d: d.fallback_model == "gpt-4.1-mini",
        ),
    ],
)
def test_throttle_and_fallback_decisions(action, extra, check) -> None:
    text = POLICY.replace("    on_runaway: pause\n", f"    on_runaway: {action}\n{extra}", 1)
    pipe = Pipeline.of(text)
    pipe.feed(*[call(step=i, tool_calls=1) for i in range(13)])
    (decision,) = pipe.decisions
    assert decision.action == action and check(decision)


def test_proceed_profile_alerts_without_a_decision() -> None:
    pipe = Pipeline.of()
    pipe.feed(
        *[call(workflow="deep-research", team="research", step=i, tool_calls=1) for i in range(31)]
    )
    assert len(pipe.kinds("runaway")) == 1
    assert pipe.decisions == []


def test_multi_agent_task_rolls_up_across_agents() -> None:
    pipe = Pipeline.of()
    agents = ["planner", "researcher", "writer"]
    pipe.feed(*[call(agent=agents[i % 3], step=i, input=10000, output=1000) for i in range(5)])
    assert pipe.kinds("runaway") == []
    pipe.feed(call(agent="writer", step=6, input=5000, output=1))
    (alert,) = pipe.kinds("runaway")
    assert alert.labels["limit"] == "max_tokens_per_task"
    assert alert.evidence["observed"] == 60001


def test_unattributed_team_falls_back_to_the_profile_owner() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(team=None, step=i, tool_calls=1) for i in range(13)])
    (alert,) = pipe.kinds("runaway")
    assert alert.team == "search"


def test_two_tasks_are_independent() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(task=t, step=i, tool_calls=1) for i in range(13) for t in ("a", "b")])
    assert sorted(a.task_id for a in pipe.kinds("runaway")) == ["a", "b"]


def test_counts_beyond_one_30_bit_digit_cross_exactly() -> None:
    """Stage 1's pre-test compares a count with a one-digit int where a profile sets no limit
    (``UNCHECKED``, 2**30 - 1): a task past it alerts on no limit it does not have, and a limit
    set above it fires the moment it is crossed (eighth pass of issue 18)."""
    text = POLICY.replace("    max_tool_calls: 30\n", "    max_tool_calls: 30\n    max_calls: 3\n")
    text = text.replace(
        "  deep-research:\n",
        "  big-tokens:\n    team: research\n    max_tokens_per_task: 3000000000\n"
        "    on_runaway: proceed\n  deep-research:\n",
    )
    pipe = Pipeline.of(text)
    for step in range(3):  # 6e9 tokens, 3 calls: deep-research sets no token limit
        pipe.feed(call("dr", team="research", workflow="deep-research", step=step, input=2 * 10**9))
    assert pipe.kinds("runaway") == []
    pipe.feed(call("bt", team="research", workflow="big-tokens", input=2 * 10**9, output=0))
    assert pipe.kinds("runaway") == []
    pipe.feed(call("bt", team="research", workflow="big-tokens", step=1, input=10**9, output=0))
    assert pipe.kinds("runaway") == []  # 3e9: at the limit, not past it
    pipe.feed(call("bt", team="research", workflow="big-tokens", step=2, input=1, output=0))
    (crossed,) = pipe.kinds("runaway")
    assert crossed.labels["limit"] == "max_tokens_per_task"
    assert crossed.evidence["observed"] == 3_000_000_001
    assert crossed.evidence["limit"] == 3_000_000_000
    pipe.feed(call("dr", team="research", workflow="deep-research", step=3, input=1))
    assert [a.labels["limit"] for a in pipe.kinds("runaway")] == [
        "max_tokens_per_task",
        "max_calls",
    ]
