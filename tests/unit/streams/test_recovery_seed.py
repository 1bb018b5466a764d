"""The recovery seed (tokengov/core/recovery.py) applied to an empty aggregator: each budget's current
period from the stored spend, thresholds already published stay published, the stored spend
and new spend count once each, and the seeded state survives persistence."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from tests.unit.streams.builders import T0, Pipeline, call
from tests.unit.streams.test_budgets import DOLLAR, thresholds
from tokengov.core.recovery import RecoverySeed, SpendRow
from tokengov.streams.core import Aggregator

DAY = T0.date()
HALF = f"budget_threshold|search|team:search:day|{DAY.isoformat()}|usd|0.5"


def row(day: date, team: str, workflow: str, usd: str, *, calls: int = 1) -> SpendRow:
    return SpendRow(day, team, workflow, calls, tokens=1000 * calls, cost_usd=Decimal(usd))


def seeded(seed: RecoverySeed) -> Pipeline:
    pipe = Pipeline.of()
    pipe.aggregator = Aggregator(pipe.clock)
    pipe.aggregator.seed(seed, pipe.view)
    return pipe


SEED = RecoverySeed(
    as_of=T0,
    spend=(
        row(DAY, "search", "support-triage", "4", calls=4),
        row(DAY, "search", "other", "2", calls=2),
        row(DAY - timedelta(days=1), "search", "other", "100"),  # yesterday: another period
        row(DAY, "research", "deep-research", "50"),  # another team
    ),
    fired=frozenset({HALF}),
)


def test_current_periods_are_rebuilt_from_the_stored_spend() -> None:
    pipe = seeded(SEED)
    agg = pipe.agg()
    day = agg.budgets[("team:search:day", DAY.isoformat())]
    assert day.cost_usd == Decimal(6) and day.calls == 6 and day.tokens == 6000
    assert day.fired == ["usd:0.5"] and not day.breached
    month = agg.budgets[("workflow:support-triage:month", DAY.isoformat()[:7])]
    assert month.tokens == 4000 and month.calls == 4
    assert ("team:search:day", (DAY - timedelta(days=1)).isoformat()) not in agg.budgets


def test_new_spend_adds_to_the_seed_once_and_published_thresholds_stay_published() -> None:
    pipe = seeded(SEED)
    pipe.feed(*[call(task=f"n{i}", **DOLLAR, workflow="other") for i in range(3)])  # $9
    pipe.flush()
    assert thresholds(pipe) == ["0.8"]  # 50 % was published before the restart
    assert not pipe.decisions
    pipe.feed(*[call(task=f"m{i}", at=60, **DOLLAR, workflow="other") for i in range(2)])  # $11
    pipe.flush()
    assert thresholds(pipe) == ["0.8", "1.0"]
    (decision,) = pipe.decisions
    assert decision.topic_key == "team:search" and decision.action == "throttle"
    budget = pipe.agg().budgets[("team:search:day", DAY.isoformat())]
    assert budget.cost_usd == Decimal(11)


def test_a_budget_already_over_its_limit_does_not_decide_again() -> None:
    over = RecoverySeed(as_of=T0, spend=(row(DAY, "search", "other", "12"),), fired=frozenset())
    pipe = seeded(over)
    pipe.feed(call(task="late", **DOLLAR, workflow="other"))
    pipe.flush()
    # the thresholds whose alert is not in the store are published (at least once) ...
    assert thresholds(pipe) == ["0.5", "0.8", "1.0"]
    # ... but the breach decision was taken before the restart: it is restored from the
    # store's decisions table if still in force, not issued again
    assert not pipe.decisions


def test_the_seeded_state_is_persisted_like_any_other() -> None:
    pipe = seeded(SEED)
    records = [(key, value) for key, value in pipe.agg().take_records() if value is not None]
    assert any(key == f"b|team:search:day|{DAY.isoformat()}" for key, _ in records)
    loaded = Aggregator.load(records, pipe.clock)  # type: ignore[arg-type]
    assert loaded.budgets[("team:search:day", DAY.isoformat())].cost_usd == Decimal(6)


def test_an_empty_seed_seeds_nothing() -> None:
    pipe = seeded(RecoverySeed(as_of=T0))
    assert pipe.agg().budgets == {}
    assert pipe.agg().take_records() == []
