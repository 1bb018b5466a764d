"""Budgets: thresholds once per period (even with duplicates and late events), breach, forecast,
rollover."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tests.unit.streams.builders import POLICY, T0, Pipeline, call

# gpt-4.1-mini: 0.40 input, 1.60 output per million; a call of 1M input tokens costs $0.40
DOLLAR = {"input": 2_500_000, "output": 0}  # $1.00 per call


def spend(pipe: Pipeline, dollars: int, *, at: float = 0.0, task: str = "b", partition: int = 0):
    events = [call(task=f"{task}{i}", at=at, **DOLLAR, workflow="other") for i in range(dollars)]
    pipe.feed(*events, partition=partition)
    return events


def thresholds(pipe: Pipeline) -> list[str]:
    return [a.labels["threshold"] for a in pipe.kinds("budget_threshold")]


def test_each_threshold_alerts_once_per_period() -> None:
    pipe = Pipeline.of()
    spend(pipe, 4)
    pipe.flush()
    assert thresholds(pipe) == []
    spend(pipe, 1, at=60, task="c")  # $5 of $10: 50%
    pipe.flush()
    assert thresholds(pipe) == ["0.5"]
    (alert,) = pipe.kinds("budget_threshold")
    assert alert.fingerprint == "budget_threshold|search|team:search:day|2026-11-29|usd|0.5"
    assert alert.team == "search" and alert.severity == "warning"
    assert Decimal(alert.evidence["spent"]) == 5 and alert.evidence["limit"] == "10"
    spend(pipe, 4, at=120, task="d")  # $9: 80% crossed
    pipe.flush()
    spend(pipe, 3, at=180, task="e")  # $12: 100% crossed
    pipe.flush()
    assert thresholds(pipe) == ["0.5", "0.8", "1.0"]
    assert pipe.kinds("budget_threshold")[-1].severity == "critical"
    spend(pipe, 5, at=240, task="f")
    pipe.flush()
    assert thresholds(pipe) == ["0.5", "0.8", "1.0"]


def test_several_thresholds_crossed_at_once_each_alert() -> None:
    pipe = Pipeline.of()
    spend(pipe, 9)
    pipe.flush()
    assert thresholds(pipe) == ["0.5", "0.8"]


def test_duplicates_do_not_count_twice() -> None:
    pipe = Pipeline.of()
    events = spend(pipe, 4)
    pipe.feed(*events)  # the same event ids again (a producer retry)
    pipe.feed(*events, envelope=True)
    pipe.flush()
    assert thresholds(pipe) == []
    (budget,) = pipe.agg().budgets.values()
    assert budget.cost_usd == Decimal(4)


MIDNIGHT = 19 * 3600  # T0 is 05:00 UTC: the day ends 19 h later


def test_late_events_within_grace_count_and_beyond_do_not() -> None:
    pipe = Pipeline.of()
    spend(pipe, 4, at=10)
    # event time moves into the next day; an event of 23:59:59 arriving 11 s late still counts
    pipe.feed(call(task="z", at=MIDNIGHT + 10, workflow="other", input=1))
    spend(pipe, 1, at=MIDNIGHT - 1, task="late")
    pipe.flush()
    assert thresholds(pipe) == ["0.5"]
    assert pipe.kinds("budget_threshold")[0].labels["period"] == "2026-11-29"
    # far beyond the grace: not counted (the history in ClickHouse still has it)
    pipe.feed(call(task="zz", at=MIDNIGHT + 300, workflow="other", input=1))
    spend(pipe, 5, at=MIDNIGHT - 400, task="too-late")
    pipe.flush()
    assert thresholds(pipe) == ["0.5"]
    assert pipe.proc().agg.late_events == 5


def test_totals_add_up_across_partitions() -> None:
    pipe = Pipeline.of()
    spend(pipe, 3, partition=0, task="p0-")
    spend(pipe, 3, partition=1, task="p1-")
    pipe.flush()
    assert thresholds(pipe) == ["0.5"]
    # partials re-delivered (a crash after sending them): nothing changes
    for proc in pipe.partitions.values():
        proc.agg.dirty_budgets.update(proc.agg.budgets)
    pipe.flush()
    (budget,) = pipe.agg().budgets.values()
    assert budget.cost_usd == Decimal(6)
    assert thresholds(pipe) == ["0.5"]


def test_breach_publishes_the_on_breach_decision_until_period_end() -> None:
    pipe = Pipeline.of()
    spend(pipe, 10)
    pipe.flush()
    (decision,) = pipe.decisions
    assert decision.scope == "team" and decision.key == "search"
    assert decision.action == "throttle" and decision.throttle_ms == 2000
    assert decision.expires_at == T0.replace(hour=0) + timedelta(days=1)
    spend(pipe, 3, at=60, task="more")
    pipe.flush()
    assert len(pipe.decisions) == 1


def test_rollover_starts_a_new_period_from_zero() -> None:
    pipe = Pipeline.of()
    spend(pipe, 6)
    pipe.flush()
    assert thresholds(pipe) == ["0.5"]
    spend(pipe, 4, at=86_400, task="next-day")
    pipe.flush()
    assert thresholds(pipe) == ["0.5"]  # the next day has $4: nothing yet
    spend(pipe, 1, at=86_460, task="next-day-more")
    pipe.flush()
    assert [a.labels["period"] for a in pipe.kinds("budget_threshold")] == [
        "2026-11-29",
        "2026-11-30",
    ]


def test_tokens_budget_counts_input_and_output() -> None:
    pipe = Pipeline.of()
    pipe.feed(*[call(task=f"t{i}", input=90_000, output=10_000) for i in range(5)])
    pipe.flush()
    (alert,) = [a for a in pipe.kinds("budget_threshold") if a.labels["unit"] == "tokens"]
    assert alert.labels["budget"] == "workflow:support-triage:month"
    assert alert.team == "search" and alert.workflow == "support-triage"
    assert alert.evidence["spent"] == "500000"


FORECAST_POLICY = POLICY.replace(
    "thresholds: [0.5, 0.8, 1.0],\n     on_breach: throttle}",
    "thresholds: [0.8, 1.0], forecast: true}",
)


def test_forecast_warns_with_the_projected_breach_time() -> None:
    pipe = Pipeline.of(FORECAST_POLICY)
    pipe.feed(call(task="early", at=-4.5 * 3600, workflow="other", **DOLLAR))  # $1 at 00:30
    pipe.feed(call(task="tick", at=0, workflow="other", cost="0"))  # event time reaches 05:00
    pipe.flush()
    pipe.feed(call(task="q1", at=900, workflow="other", **DOLLAR))  # $2 at 05:15
    pipe.flush()
    assert pipe.kinds("budget_forecast") == []  # $2 by 05:15 projects ~$9 by midnight
    pipe.feed(call(task="q2", at=1800, workflow="other", **DOLLAR))  # $3 at 05:30
    pipe.flush()
    (forecast,) = pipe.kinds("budget_forecast")
    assert forecast.fingerprint == "budget_forecast|search|team:search:day|2026-11-29"
    # the trailing burn rate is $2 in 30 min = $4/h; $7 to go → 1 h 45 min after 05:30
    assert forecast.evidence["projected_breach_at"] == "2026-11-29T07:15:00.000Z"
    assert Decimal(forecast.evidence["burn_rate_per_hour"]) == 4
    assert "on track to exceed its $10.00 daily budget at 2026-11-29T07:15:00.000Z" in (
        forecast.summary
    )
    pipe.feed(call(task="q3", at=2700, workflow="other", **DOLLAR))
    pipe.flush()
    assert len(pipe.kinds("budget_forecast")) == 1
    assert pipe.kinds("budget_threshold") == []


def test_no_forecast_before_enough_of_the_period_elapsed() -> None:
    text = FORECAST_POLICY.replace("forecast_min_elapsed: 15m", "forecast_min_elapsed: 6h")
    pipe = Pipeline.of(text)
    spend(pipe, 7)  # $7 by 05:00 projects a breach but only 5 h of the day elapsed
    pipe.flush()
    assert pipe.kinds("budget_forecast") == []
