"""Retry storms (no backoff, or beyond max_retries) and loops (same tool, no step progress)."""

from __future__ import annotations

from tests.unit.streams.builders import POLICY, Pipeline, call
from tokengov.streams.core.retry_storm import backoff_growth

NO_PROFILE_LIMITS = POLICY.replace("    max_retries: 3\n", "    max_retries: 10\n", 1)


def attempts(step: int, times: list[float], task: str = "t-1", **kw):
    return [call(task=task, step=step, attempt=i + 1, at=t, **kw) for i, t in enumerate(times)]


def test_retries_at_a_constant_interval_are_a_storm() -> None:
    pipe = Pipeline.of(NO_PROFILE_LIMITS)
    pipe.feed(*attempts(3, [0, 1, 2, 3]))  # 3 retries, 1 s apart: no backoff
    (storm,) = pipe.kinds("retry_storm")
    assert storm.fingerprint == "retry_storm|search|support-triage|t-1|step-3"
    assert storm.evidence["retries"] == 3
    assert storm.evidence["gaps_ms"] == [1000, 1000, 1000]
    assert "without backoff" in storm.summary
    assert storm.severity == "warning"


def test_immediate_retries_are_a_storm() -> None:
    pipe = Pipeline.of(NO_PROFILE_LIMITS)
    pipe.feed(*attempts(1, [0, 0.05, 0.1, 0.12]))
    assert len(pipe.kinds("retry_storm")) == 1


def test_exponential_backoff_is_quiet() -> None:
    pipe = Pipeline.of(NO_PROFILE_LIMITS)
    pipe.feed(*attempts(3, [0, 1, 3, 7, 15, 31]))  # gaps 1, 2, 4, 8, 16 s
    assert pipe.kinds("retry_storm") == []


def test_jittered_exponential_backoff_is_quiet() -> None:
    pipe = Pipeline.of(NO_PROFILE_LIMITS)
    pipe.feed(*attempts(2, [0, 1.2, 2.9, 7.1, 14.0]))  # gaps 1.2, 1.7, 4.2, 6.9
    assert pipe.kinds("retry_storm") == []


def test_backoff_beyond_max_retries_is_a_storm() -> None:
    pipe = Pipeline.of()  # max_retries: 3
    pipe.feed(*attempts(3, [0, 1, 3, 7]))
    assert pipe.kinds("retry_storm") == []
    pipe.feed(call(step=3, attempt=5, at=15))
    (storm,) = pipe.kinds("retry_storm")
    assert storm.evidence["retries"] == 4 and storm.evidence["max_retries"] == 3
    assert "allows 3" in storm.summary


def test_one_storm_alert_per_step() -> None:
    pipe = Pipeline.of(NO_PROFILE_LIMITS)
    pipe.feed(*attempts(3, [0, 1, 2, 3, 4, 5, 6]))
    pipe.feed(*attempts(4, [10, 11, 12, 13]))
    assert sorted(a.labels["step"] for a in pipe.kinds("retry_storm")) == ["3", "4"]


def test_workflow_without_profile_still_detects_no_backoff() -> None:
    pipe = Pipeline.of()
    pipe.feed(*attempts(1, [0, 1, 2, 3], workflow="unprofiled"))
    assert len(pipe.kinds("retry_storm")) == 1


def test_backoff_growth() -> None:
    assert backoff_growth([[1, 0], [2, 1000]]) is None
    assert backoff_growth([[1, 0], [2, 1000], [3, 3000], [4, 7000]]) == 2.0
    assert backoff_growth([[1, 0], [2, 1000], [3, 2000]]) == 1.0


# ---------------------------------------------------------------- loops


def test_same_tool_without_progress_is_a_loop() -> None:
    pipe = Pipeline.of()  # max_same_tool_calls: 5
    pipe.feed(*[call(step=2, tool="search_docs", tool_calls=1, at=i) for i in range(5)])
    assert pipe.kinds("loop") == []
    pipe.feed(call(step=2, tool="search_docs", tool_calls=1, at=6))
    (loop,) = pipe.kinds("loop")
    assert loop.fingerprint == "loop|search|support-triage|t-1|search_docs"
    assert loop.evidence == {
        "tool_name": "search_docs",
        "observed": 6,
        "limit": 5,
        "step": 2,
        "event_id": loop.evidence["event_id"],
    }
    pipe.feed(*[call(step=2, tool="search_docs", at=10 + i) for i in range(5)])
    assert len(pipe.kinds("loop")) == 1


def test_step_progress_is_not_a_loop() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(step=i, tool="search_docs", at=i) for i in range(20)])
    assert pipe.kinds("loop") == []


def test_alternating_tools_are_not_a_loop() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(step=1, tool=("search", "read")[i % 2], at=i) for i in range(12)])
    assert pipe.kinds("loop") == []


def test_retries_do_not_extend_a_run() -> None:
    pipe = Pipeline.of(NO_PROFILE_LIMITS)
    pipe.feed(call(step=1, tool="search", at=0))
    pipe.feed(*[call(step=1, tool="search", attempt=a, at=a * 2**a) for a in range(2, 9)])
    assert pipe.kinds("loop") == []


def test_default_loop_limit_applies_without_a_profile_value() -> None:
    pipe = Pipeline.of()
    pipe.feed(
        *[call(workflow="deep-research", team="research", step=0, tool="x", at=i) for i in range(7)]
    )
    (loop,) = pipe.kinds("loop")
    assert loop.evidence["limit"] == 6
