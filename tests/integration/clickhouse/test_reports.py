"""Every report on a populated store, checked against the same numbers computed in Python."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tokengov.core.contracts import Alert, CallEvent, Outcome
from tokengov.core.decoding import parse_event
from tokengov.core.policy import Policy
from tokengov.core.pricing import price_call
from tokengov.sinks.clickhouse.batch import Consumed, Flush, PartitionSlice
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.reader import StoreReader
from tokengov.sinks.clickhouse.reports import REPORTS, ReportWindow, run_report
from tokengov.sinks.clickhouse.rows import alert_row
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import COLUMNS

from .conftest import make_events

pytestmark = pytest.mark.integration

SINCE = datetime(2026, 10, 30, tzinfo=UTC)
UNTIL = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def populated(store: ClickHouseStore, policy: Policy) -> list[CallEvent | Outcome]:
    docs = make_events(150, seed=30)
    decoder = MessageDecoder(lambda: policy.catalog)
    piece = PartitionSlice("events", 0)
    for offset, doc in enumerate(docs):
        piece.messages.append(
            Consumed.of_decoded("events", 0, offset, decoder.decode("events", orjson.dumps(doc)))
        )
    for table, pairs in Flush.of([piece]).rows_by_table().items():
        store.insert(table, [i.row for _, i in pairs], columns=COLUMNS[table])
    alerts = [
        Alert(
            alert_id="a1",
            fingerprint="f1",
            kind="runaway",
            severity="critical",
            team="search",
            summary="s",
            starts_at=datetime(2026, 10, 30, 13, tzinfo=UTC),
        ),
        Alert(
            alert_id="a1",
            fingerprint="f1",
            kind="runaway",
            severity="critical",
            status="resolved",
            team="search",
            summary="s",
            starts_at=datetime(2026, 10, 30, 13, tzinfo=UTC),
        ),
        Alert(
            alert_id="a2",
            fingerprint="f2",
            kind="runaway",
            severity="critical",
            team="search",
            summary="s",
            starts_at=datetime(2026, 10, 31, 1, tzinfo=UTC),
        ),
        Alert(
            alert_id="a3",
            fingerprint="f3",
            kind="budget_threshold",
            severity="warning",
            team="support",
            summary="s",
            starts_at=datetime(2026, 10, 31, 2, tzinfo=UTC),
        ),
        Alert(
            alert_id="a4",
            fingerprint="f4",
            kind="runaway",
            severity="critical",
            team="search",
            summary="s",
            starts_at=datetime(2026, 9, 1, tzinfo=UTC),
        ),  # outside
    ]
    store.insert("alerts", [alert_row(a) for a in alerts], columns=COLUMNS["alerts"])
    return [parse_event(d) for d in docs]


def _report(
    name: str, store: ClickHouseStore, policy: Policy | None = None, **kw: Any
) -> list[dict[str, Any]]:
    reader = StoreReader(store.dsn)
    try:
        window = ReportWindow(kw.pop("since", SINCE), kw.pop("until", UNTIL), policy=policy, **kw)
        return run_report(name, reader, window).dicts()
    finally:
        reader.close()


def _calls(events: list[CallEvent | Outcome]) -> list[CallEvent]:
    return [e for e in events if isinstance(e, CallEvent)]


def test_every_report_runs(store, populated, policy):
    for name in REPORTS:
        assert _report(name, store, policy), name


def test_spend(store, populated, policy):
    expected: dict[tuple[str, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), 0])
    for e in _calls(populated):
        if e.team == "search":
            acc = expected[(e.team, e.workflow, e.model)]
            acc[0] += 1
            acc[1] += price_call(e, policy.catalog).cost_usd
            acc[2] += e.attempt > 1
    rows = _report("spend", store, team="search")
    assert {
        (r["team"], r["workflow"], r["model"]): [r["calls"], r["cost_usd"], r["retries"]]
        for r in rows
    } == {k: v for k, v in expected.items()}
    assert [r["cost_usd"] for r in rows] == sorted((r["cost_usd"] for r in rows), reverse=True)


def test_top_tasks(store, populated, policy):
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for e in _calls(populated):
        cost[e.task] += price_call(e, policy.catalog).cost_usd
    outcome = {e.task_id: e.status for e in populated if isinstance(e, Outcome)}
    rows = _report("top-tasks", store, limit=5)
    top = sorted(cost.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(r["task_id"], r["cost_usd"]) for r in rows] == top
    assert [r["outcome"] for r in rows] == [outcome.get(t, "") for t, _ in top]


def test_unit_economics(store, populated, policy):
    bars = {n: p.quality_bar for n, p in policy.cost_profiles.items()}
    tokens: dict[str, int] = defaultdict(int)
    retry_tokens: dict[str, int] = defaultdict(int)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    workflow_of: dict[str, str] = {}
    for e in _calls(populated):
        tokens[e.task] += e.tokens.total
        retry_tokens[e.task] += e.tokens.total if e.attempt > 1 else 0
        cost[e.task] += price_call(e, policy.catalog).cost_usd
        workflow_of[e.task] = e.workflow
    outcomes = {e.task_id: e for e in populated if isinstance(e, Outcome)}
    per: dict[str, dict[str, Any]] = {}
    for task, workflow in workflow_of.items():
        w = per.setdefault(
            workflow,
            {
                "tasks": 0,
                "with": 0,
                "ok": 0,
                "tok_with": 0,
                "tok": 0,
                "retry": 0,
                "cost": Decimal(0),
            },
        )
        w["tasks"] += 1
        w["tok"] += tokens[task]
        w["retry"] += retry_tokens[task]
        w["cost"] += cost[task]
        if task in outcomes:
            w["with"] += 1
            w["tok_with"] += tokens[task]
            w["ok"] += outcomes[task].met_quality_bar(bars.get(workflow))
    rows = {r["workflow"]: r for r in _report("unit-economics", store, policy)}
    assert set(rows) == set(per)
    for workflow, w in per.items():
        r = rows[workflow]
        assert (r["tasks"], r["tasks_with_outcome"], r["successes"]) == (
            w["tasks"],
            w["with"],
            w["ok"],
        )
        assert r["cost_usd"] == w["cost"]
        assert r["success_rate"] == pytest.approx(w["ok"] / w["with"], abs=1e-4)
        assert r["tokens_per_outcome"] == pytest.approx(w["tok_with"] / w["with"], abs=0.1)
        assert r["retry_token_ratio"] == pytest.approx(w["retry"] / w["tok"], abs=1e-4)
        if w["ok"]:
            assert r["cost_per_successful_task"] == pytest.approx(
                w["cost"] / w["ok"], abs=Decimal("1e-12")
            )


def test_budgets(store, populated, policy):
    until = datetime(2026, 10, 31, 18, tzinfo=UTC)
    day_usd = sum(
        (
            price_call(e, policy.catalog).cost_usd
            for e in _calls(populated)
            if e.team == "search" and e.ts.date() == until.date()
        ),
        Decimal(0),
    )
    month_tokens = sum(
        e.tokens.total for e in _calls(populated) if e.workflow == "summary" and e.ts.month == 10
    )
    rows = {r["budget_id"]: r for r in _report("budgets", store, policy, until=until)}
    team = rows["team:search:day"]
    assert team["spent_usd"] == day_usd.quantize(Decimal("0.000001"))
    assert team["used_usd"] == pytest.approx(float(day_usd / Decimal("0.05")), abs=1e-4)
    used = day_usd / Decimal("0.05")
    expected_status = (
        "breached"
        if used >= 1
        else "over 80%"
        if used >= Decimal("0.8")
        else "over 50%"
        if used >= Decimal("0.5")
        else "ok"
    )
    assert team["status"] == expected_status
    assert team["forecast_usd"] == (day_usd * Decimal(24 / 18)).quantize(Decimal("0.01"))
    workflow = rows["workflow:summary:month"]
    assert workflow["spent_tokens"] == month_tokens
    assert workflow["status"] == "ok"


def test_alerts(store, populated):
    rows = _report("alerts", store)
    assert [(r["team"], r["kind"], r["alerts"], r["firing"], r["resolved"]) for r in rows] == [
        ("search", "runaway", 2, 1, 1),
        ("support", "budget_threshold", 1, 1, 0),
    ]
    assert _report("alerts", store, team="support")[0]["alerts"] == 1


def test_coverage(store, populated, policy):
    calls = _calls(populated)
    rows = _report("coverage", store)
    total = rows[-1]
    assert total["day"] == "total" and total["calls"] == len(calls)
    attributed = sum(1 for e in calls if e.team != "unattributed")
    assert total["team_coverage"] == pytest.approx(attributed / len(calls), abs=1e-4)
    # a call without usage is counted as such, not as unpriced
    unpriced = sum(
        1 for e in calls if price_call(e, policy.catalog).unpriced and not e.usage_missing
    )
    assert total["unpriced_calls"] == unpriced > 0
    assert total["missing_usage_calls"] == sum(1 for e in calls if e.usage_missing) > 0
    days = {r["day"]: r["calls"] for r in rows[:-1]}
    assert sum(days.values()) == len(calls)
    by_day: dict[str, int] = defaultdict(int)
    for e in calls:
        by_day[e.ts.date().isoformat()] += 1
    assert days == by_day
