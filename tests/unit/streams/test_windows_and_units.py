"""Tumbling windows with late grace, attribution coverage, unit metrics, daily alerts."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.streams.builders import Pipeline, call, outcome


def usage(pipe: Pipeline, window: str, **match):
    return pipe.metric("usage", window=window, **match)


def test_minute_window_counts_tokens_by_kind_and_component() -> None:
    pipe = Pipeline.of()
    pipe.feed(
        call(at=1, input=1200, output=300, cached=800, reasoning=100, tool_calls=1),
        call(at=2, attempt=2, status="error", model="claude-sonnet-4", cache_write=100, input=500),
        call(at=3, input=1000, output=0),
    )
    pipe.feed(call(at=95, input=1, output=1))  # event time passes 05:01 + 30 s grace
    pipe.flush()
    rows = usage(pipe, "1m", window_start="2026-11-29T05:00:00.000Z")
    by_model = {r["model"]: r for r in rows}
    mini = by_model["gpt-4.1-mini"]
    assert mini["calls"] == 2
    assert (mini["input_tokens"], mini["output_tokens"]) == (2200, 300)
    assert (mini["cached_input_tokens"], mini["reasoning_tokens"]) == (800, 100)
    assert mini["retries"] == 0 and mini["errors"] == 0 and mini["revision"] == 0
    # (400 uncached × 0.40 + 800 × 0.10 + 300 × 1.60) + (1000 × 0.40) per million
    assert Decimal(mini["cost_usd"]) == Decimal("0.00112")
    sonnet = by_model["claude-sonnet-4"]
    assert sonnet["retries"] == 1 and sonnet["errors"] == 1 and sonnet["cache_write_tokens"] == 100
    assert mini["window_end"] == "2026-11-29T05:01:00.000Z"
    assert {r["team"] for r in rows} == {"search"} and {r["agent"] for r in rows} == {"planner"}
    # the 1-hour window is still open
    assert usage(pipe, "1h") == []


def test_components_are_summed() -> None:
    pipe = Pipeline.of()
    event = call(at=1, input=1000).model_copy(
        update={"components": call().components.model_copy(update={"system": 400, "history": 250})}
    )
    pipe.feed(event, call(at=100, input=1))
    pipe.flush()
    (row,) = usage(pipe, "1m", window_start="2026-11-29T05:00:00.000Z")
    assert (
        row["system_tokens"] == 400 and row["history_tokens"] == 250 and row["memory_tokens"] == 0
    )


def test_late_event_within_grace_counts_and_beyond_grace_does_not() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(at=10), call(at=75))  # watermark 05:01:15
    pipe.feed(call(at=50))  # 25 s after its window ended: within the 30 s grace
    pipe.feed(call(at=100))  # watermark 05:01:40
    pipe.feed(call(at=20))  # 40 s after the window's end: too late
    pipe.flush()
    (row,) = usage(pipe, "1m", window_start="2026-11-29T05:00:00.000Z")
    assert row["calls"] == 2
    assert pipe.proc().agg.late_events == 1
    # the 1-hour window still counts the late call (its end is far away)
    pipe.clock.advance(31)
    pipe.flush()
    (hour,) = usage(pipe, "1h")
    assert hour["calls"] == 5


def test_idle_window_is_published_after_the_idle_timeout() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(at=10))
    pipe.flush()
    assert usage(pipe, "1m") == []
    pipe.clock.advance(31)
    pipe.flush()
    assert len(usage(pipe, "1m")) == 1 and len(usage(pipe, "1h")) == 1


def test_windows_sum_partitions_and_republish_a_revision_for_a_lagging_one() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(task="a", at=10), partition=0)
    pipe.feed(call(task="b", at=20), partition=1)
    pipe.feed(call(task="c", at=200), partition=0)  # partition 0 moves on; window closes
    pipe.flush()
    (row,) = usage(pipe, "1m", window_start="2026-11-29T05:00:00.000Z")
    assert row["calls"] == 2 and row["revision"] == 0
    pipe.feed(call(task="d", at=30), partition=1)  # partition 1 is behind: still within its grace
    pipe.flush()
    rows = usage(pipe, "1m", window_start="2026-11-29T05:00:00.000Z")
    assert [(r["calls"], r["revision"]) for r in rows] == [(2, 0), (3, 1)]


def test_attribution_coverage_metric_and_alert() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(task="a", at=10, input=700, output=100))
    pipe.feed(call(task="b", at=20, team=None, workflow=None, input=150, output=50))
    pipe.flush()
    pipe.clock.advance(31)
    pipe.flush()
    (minute,) = pipe.metric("attribution_coverage", window="1m")
    assert minute["tokens"] == 1000 and minute["unattributed_tokens"] == 200
    assert minute["token_coverage"] == 0.8
    (alert,) = pipe.kinds("attribution_coverage")
    assert alert.team == "unattributed" and alert.labels == {"window": "1h"}
    assert alert.fingerprint == "attribution_coverage|unattributed|1h|2026-11-29T05:00:00.000Z"
    assert "80.0%" in alert.summary


# ---------------------------------------------------------------- unit metrics


def test_unit_metrics_per_workflow_and_day() -> None:
    pipe = Pipeline.of()
    # task a: two agents, 6000 + 2000 tokens, succeeds above the bar
    pipe.feed(
        call(task="a", at=1, agent="planner", input=5000, output=1000, context_window=10000),
        call(task="a", at=2, agent="writer", parent="planner", input=1500, output=500),
        outcome(task="a", at=3, quality=0.9),
    )
    # task b: a retry, succeeds below the bar
    pipe.feed(
        call(task="b", at=4, input=3000, output=1000, context_window=8000),
        call(task="b", at=5, attempt=2, input=3000, output=1000),
        outcome(task="b", at=6, quality=0.5),
    )
    # task c fails
    pipe.feed(call(task="c", at=7, input=1000, output=0), outcome(task="c", at=8, status="failure"))
    pipe.clock.advance(11)
    pipe.flush()
    (unit,) = pipe.metric("unit", workflow="support-triage", day="2026-11-29")
    assert unit["tasks_finished"] == 3
    assert unit["tasks_succeeded"] == 2 and unit["tasks_met_quality_bar"] == 1
    assert unit["success_rate"] == 2 / 3 and unit["quality_rate"] == 1 / 3
    assert unit["tokens"] == 17000
    assert unit["tokens_per_outcome"] == 17000.0  # one good outcome carries all the spend
    assert unit["retry_tokens"] == 4000 and unit["first_attempt_tokens"] == 13000
    assert unit["retry_token_ratio"] == 4000 / 13000
    # amplification: a 8000/4000, b 8000/4000, c 1000/4000
    assert unit["amplification_mean"] == (2 + 2 + 0.25) / 3
    assert unit["amplification_max"] == 2
    assert unit["context_utilization_mean"] == (0.5 + 3000 / 8000) / 2
    assert unit["context_utilization_max"] == 0.5
    assert Decimal(unit["cost_per_successful_task"]) == Decimal(unit["cost_usd"]).quantize(
        Decimal("0.000001")
    )
    assert unit["team"] == "search" and unit["baseline_tokens"] == 4000


def test_second_outcome_for_a_task_is_ignored() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(task="a"), outcome(task="a"), outcome(task="a", status="failure"))
    pipe.clock.advance(11)
    pipe.flush()
    (unit,) = pipe.metric("unit")
    assert unit["tasks_finished"] == 1 and unit["tasks_succeeded"] == 1


def test_unit_metrics_are_republished_when_they_change() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(task="a"), outcome(task="a"))
    pipe.flush()
    assert len(pipe.metric("unit")) == 1
    pipe.feed(call(task="b"), outcome(task="b"))
    pipe.flush()
    assert len(pipe.metric("unit")) == 1  # not due yet (every 10 s)
    pipe.clock.advance(10)
    pipe.flush()
    assert [u["revision"] for u in pipe.metric("unit")] == [0, 1]
    assert pipe.metric("unit")[-1]["tasks_finished"] == 2


# ---------------------------------------------------------------- once a day


def test_missing_cost_profile_once_per_workflow_per_day() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(task=f"n{i}", workflow="new-flow", team="research") for i in range(3)])
    pipe.flush()
    pipe.feed(call(task="n9", workflow="new-flow", team="research", at=60))
    pipe.flush()
    (alert,) = pipe.kinds("missing_cost_profile")
    assert alert.fingerprint == "missing_cost_profile|research|new-flow|2026-11-29"
    assert alert.team == "research" and alert.evidence["calls"] == 3
    pipe.feed(call(task="n10", workflow="new-flow", team="research", at=19 * 3600 + 60))
    pipe.flush()
    assert [a.labels["day"] for a in pipe.kinds("missing_cost_profile")] == [
        "2026-11-29",
        "2026-11-30",
    ]


def test_unattributed_workflow_is_not_a_missing_profile() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(workflow=None))
    pipe.flush()
    assert pipe.kinds("missing_cost_profile") == []


def test_unpriced_model_costs_zero_is_counted_and_alerted_once_per_day() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(task=f"u{i}", model="gpt-9", at=i, input=500, output=500) for i in range(4)])
    pipe.flush()
    pipe.feed(call(task="u9", model="gpt-9", at=100))
    pipe.clock.advance(31)
    pipe.flush()
    (alert,) = pipe.kinds("unpriced_model")
    assert alert.fingerprint == "unpriced_model|search|gpt-9|2026-11-29"
    assert alert.evidence["calls"] == 4 and alert.evidence["tokens"] == 4000
    rows = usage(pipe, "1m", model="gpt-9", window_start="2026-11-29T05:00:00.000Z")
    assert rows[0]["unpriced_calls"] == 4 and Decimal(rows[0]["cost_usd"]) == 0
    assert pipe.proc().tasks["u0"].cost_femto == 0


def test_calls_without_usage_cost_zero_are_counted_and_alerted_once_per_workflow_and_day() -> None:
    pipe = Pipeline.of()
    missing = [call(task=f"m{i}", at=i, input=0, output=0, usage_missing=True) for i in range(3)]
    # an unpriced model without usage is a missing usage, not an unpriced call
    missing.append(call(task="m3", model="gpt-9", at=3, input=0, output=0, usage_missing=True))
    pipe.feed(*missing, call(task="ok", at=4, input=1000, output=100))
    pipe.flush()
    pipe.feed(call(task="m9", at=100, input=0, output=0, usage_missing=True))
    pipe.clock.advance(31)
    pipe.flush()
    (alert,) = pipe.kinds("missing_usage")
    assert alert.fingerprint == "missing_usage|search|support-triage|2026-11-29"
    assert alert.workflow == "support-triage" and alert.evidence["calls"] == 4
    assert pipe.kinds("unpriced_model") == []
    rows = usage(pipe, "1m", window_start="2026-11-29T05:00:00.000Z")
    assert sum(r["calls"] for r in rows) == 5
    assert all(r["unpriced_calls"] == 0 for r in rows)
    # only the call with usage costs anything: 1000 × 0.40 + 100 × 1.60 per million
    assert sum(Decimal(r["cost_usd"]) for r in rows) == Decimal("0.00056")
    assert pipe.proc().tasks["m0"].cost_femto == 0
