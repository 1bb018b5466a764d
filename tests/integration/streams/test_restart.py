"""A worker killed (SIGKILL) mid-scenario and restarted neither loses nor repeats an alert."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.streams.events import POLICY, call, now, tool_calls
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_killed_worker_restarts_without_losing_or_repeating_alerts(cluster_factory) -> None:
    c = cluster_factory(POLICY)
    first = c.start_worker()
    day = now().date().isoformat()

    # phase 1: four tasks cross max_tool_calls; research spends $0.60 of its $1 (50% crossed)
    phase1 = {f"k{i}": tool_calls(f"k{i}", 6) for i in range(1, 5)}
    for events in phase1.values():
        c.send(*events[:3])
        c.send(*events[3:], envelope=True)
    spend = call("k-spend", team="research", tokens={"input": 1_500_000, "output": 0})
    c.send(spend)
    wait_for(lambda: len(c.fingerprints()) >= 5, 40, "the phase-1 alerts", c.tail)

    # phase 2 starts while the worker runs — and the worker dies without a goodbye
    phase2 = {f"k{i}": tool_calls(f"k{i}", 6) for i in range(5, 9)}
    for events in phase2.values():
        c.send(*events[:3])
    first.kill()

    # the rest of phase 2 arrives while nobody is processing: duplicates of everything so far
    # (a producer replaying), more calls for tasks that already crossed, the other halves
    for events in phase1.values():
        c.send(*events)
        c.send(call(events[0]["task_id"], tool_calls=1))
    c.send(spend)  # the same $0.60 again: must not reach 100%
    c.send(call("k-spend2", team="research", tokens={"input": 750_000, "output": 0}))  # +$0.30
    for events in phase2.values():
        c.send(*events)  # the first three again (duplicates) and the other three
    c.start_worker()

    expected = Counter(
        [f"runaway|search|support-triage|k{i}|max_tool_calls" for i in range(1, 9)]
        + [f"budget_threshold|research|team:research:day|{day}|usd|0.5"]
    )
    wait_for(lambda: len(c.fingerprints()) >= len(expected), 60, "the phase-2 alerts", c.tail)
    c.wait_processed(40)
    assert Counter(c.fingerprints()) == expected, c.tail()
    decisions = Counter(key for key, _ in c.decisions())
    assert decisions == Counter(f"task:k{i}" for i in range(1, 9)), c.tail()
    for alert in c.alerts():
        if alert["kind"] == "runaway":
            assert alert["evidence"]["observed"] == 6, alert
