"""Every query of every committed dashboard, run against the real schema (chdb) on a populated
store with Grafana's variables and the ClickHouse plugin's macros expanded for a time range.

The schema and the rows come from the ClickHouse part (``tokengov.sinks.clickhouse``: ``migrate``,
``event_row`` …), so a column renamed there fails here."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.app.local.broker import free_port
from tokengov.core.contracts import (
    Alert,
    CallEvent,
    Components,
    Decision,
    Outcome,
    TokenCounts,
    utcnow,
)
from tokengov.core.policy import load_policy
from tokengov.core.pricing import price_call
from tokengov.sinks.clickhouse.endpoint import QueryEndpoint
from tokengov.sinks.grafana.alert_marks import read_alert_marks
from tokengov.sinks.grafana.client import GrafanaAPI
from tokengov.sinks.grafana.dashboards import DASHBOARDS
from tokengov.sinks.grafana.macros import TimeRange, VariableValue, render_query
from tokengov.sinks.grafana.sql import ALL_VALUE
from tokengov.sinks.grafana.sync import sync

from .conftest import FakeGrafana

pytestmark = pytest.mark.integration

store_module = pytest.importorskip(
    "tokengov.sinks.clickhouse.store",
    reason="the ClickHouse part (tokengov.sinks.clickhouse) is not merged yet",
)
migrate_module = pytest.importorskip("tokengov.sinks.clickhouse.migrate")
rows = pytest.importorskip("tokengov.sinks.clickhouse.rows")

REPO = Path(__file__).resolve().parents[3]
#: The ClickHouse dashboards (the "tokengov pipeline" one queries Prometheus: its expressions
#: are checked against a real /metrics scrape in tests/integration/test_worker_metrics.py).
DASHBOARD_FILES = sorted(REPO / "grafana" / "dashboards" / spec.filename for spec in DASHBOARDS)
TEAMS = {
    "search": ("support-triage", "query-rewrite"),
    "support": ("refund-agent",),
    "research": ("deep-research",),
}
MODELS = ("gpt-4.1-mini", "claude-sonnet-4", "o4-mini")
UNPRICED = "mystery-model-9"
INTERVAL = timedelta(minutes=5)


@dataclass
class Facts:
    """What was inserted, computed in Python, to check panel results against."""

    start: datetime
    end: datetime
    cost_usd: Decimal = Decimal(0)
    cost_by_team: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    calls: int = 0
    unpriced_calls: int = 0
    tokens_by_task: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  # task → (workflow, status)
    alert_ids_by_team: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    resolved_alert: str = ""
    latest_waste_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class Populated:
    store: Any
    dsn: str
    facts: Facts


def _fleet(now: datetime) -> tuple[list[CallEvent], list[Outcome]]:
    rng = random.Random(20261129)
    events: list[CallEvent] = []
    outcomes: list[Outcome] = []
    n = 0
    for t in range(80):
        team = rng.choice(sorted(TEAMS))
        workflow = rng.choice(TEAMS[team])
        task = f"t-{t:03d}"
        ts = now - timedelta(hours=23) + timedelta(minutes=rng.randrange(0, 22 * 60))
        for step in range(rng.randint(1, 5)):
            for attempt in (1, 2) if rng.random() < 0.2 else (1,):
                n += 1
                model = UNPRICED if rng.random() < 0.05 else rng.choice(MODELS)
                inp = rng.randint(500, 9000)
                out = rng.randint(50, 900)
                events.append(
                    CallEvent(
                        event_id=f"e-{n:05d}",
                        ts=ts,
                        team=team,
                        workflow=workflow,
                        task_id=task,
                        agent="planner" if step == 0 else "worker",
                        parent_agent=None if step == 0 else "planner",
                        step=step,
                        provider="openai" if model != "claude-sonnet-4" else "anthropic",
                        model=model,
                        tokens=TokenCounts(
                            input=inp,
                            output=out,
                            cached_input=inp // 4,
                            reasoning=out // 5 if model == "o4-mini" else 0,
                        ),
                        components=Components(system=200, history=inp // 2),
                        attempt=attempt,
                        tool_calls=rng.randint(0, 3),
                        latency_ms=800,
                        status="ok" if attempt == 2 or rng.random() > 0.1 else "error",
                    )
                )
                ts += timedelta(seconds=rng.randint(5, 90))
        if t % 10 != 9:  # a few tasks are still running: no outcome yet
            status = "success" if rng.random() < 0.7 else rng.choice(("failure", "abandoned"))
            outcomes.append(
                Outcome(
                    event_id=f"o-{t:03d}",
                    ts=ts + timedelta(seconds=5),
                    team=team,
                    workflow=workflow,
                    task_id=task,
                    status=status,
                    quality=0.9,
                )
            )
    # Spend nobody owns: kept under `unattributed`, never lost.
    events.append(
        CallEvent(
            event_id="e-orphan",
            ts=now - timedelta(hours=2),
            model="gpt-4.1",
            tokens=TokenCounts(input=3000, output=300),
        )
    )
    return events, outcomes


def _alerts(now: datetime) -> list[Alert]:
    start = now - timedelta(hours=3)
    runaway = dict(
        alert_id="al-runaway",
        fingerprint="runaway|search|support-triage|t-001|max_tool_calls",
        kind="runaway",
        severity="critical",
        team="search",
        workflow="support-triage",
        task_id="t-001",
        labels={"limit": "max_tool_calls"},
        summary="task t-001 made 13 tool calls; its cost profile allows 12",
        evidence={"observed": 13, "limit": 12},
        starts_at=start,
    )
    return [
        Alert(**runaway),
        Alert(**{**runaway, "status": "resolved", "ends_at": start + timedelta(minutes=20)}),
        Alert(
            alert_id="al-budget",
            fingerprint="budget_threshold|team|search|day|0.8",
            kind="budget_threshold",
            severity="warning",
            team="search",
            labels={"budget": "search", "threshold": "0.8"},
            summary="team search spent $161.20 of its $200 daily budget (80%)",
            evidence={"observed": 161.2, "limit": 200},
            starts_at=now - timedelta(hours=1),
        ),
        Alert(
            alert_id="al-forecast",
            fingerprint="budget_forecast|team|support|day",
            kind="budget_forecast",
            severity="warning",
            team="support",
            summary="team support will exceed its budget by 18:00 UTC",
            evidence={"observed": 90.0, "limit": 100, "forecast": 130.5},
            starts_at=now - timedelta(minutes=40),
        ),
        Alert(
            alert_id="al-unpriced",
            fingerprint=f"unpriced_model|research|{UNPRICED}",
            kind="unpriced_model",
            severity="warning",
            team="research",
            summary=f"model {UNPRICED} has no price",
            starts_at=now - timedelta(hours=5),
        ),
    ]


def _decisions(now: datetime) -> list[Decision]:
    return [
        Decision(
            scope="task",
            key="t-001",
            action="pause",
            reason="runaway: max_tool_calls 13 > 12",
            issued_at=now - timedelta(hours=3),
            expires_at=now + timedelta(hours=1),
        ),
        Decision(
            scope="workflow",
            key="deep-research",
            action="fallback",
            reason="budget 100%",
            fallback_model="gpt-4.1-mini",
            issued_at=now - timedelta(hours=2),
        ),
        Decision(
            scope="team",
            key="support",
            action="throttle",
            reason="forecast breach",
            throttle_ms=500,
            issued_at=now - timedelta(minutes=30),
        ),
        Decision(
            scope="team",
            key="support",
            action="proceed",
            reason="lifted by a human",
            issued_at=now - timedelta(minutes=5),
        ),
    ]


def _findings(now: datetime) -> tuple[list[Any], Decimal]:
    found = []
    latest = Decimal(0)
    patterns = [
        (
            "context_management",
            "history_resend",
            "search",
            "support-triage",
            "planner",
            Decimal("12.5"),
        ),
        ("retrieval", "oversized_retrieval", "research", "deep-research", None, Decimal("4.25")),
        (
            "tool_usage",
            "whole_tool_responses",
            "support",
            "refund-agent",
            "worker",
            Decimal("1.75"),
        ),
    ]
    for area, detector, team, workflow, agent, base in patterns:
        for window in range(3):  # re-judged every window: only the latest estimate counts
            waste = base + window
            found.append(
                rows.Finding(
                    area=area,
                    detector=detector,  # stored once findings has the column (see docs)
                    team=team,
                    workflow=workflow,
                    agent=agent,
                    evidence={"history_share": 0.6},
                    estimated_waste_tokens_per_day=int(waste * 1000),
                    estimated_waste_usd_per_day=waste,
                    confidence=0.8,
                    better_pattern="summarise history instead of resending it",
                    ts=now - timedelta(hours=6 - 2 * window),
                )
            )
        latest += base + 2
    return found, latest


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Populated]:
    now = utcnow().replace(second=0, microsecond=0)
    facts = Facts(start=now - timedelta(hours=24), end=now + timedelta(minutes=1))
    dsn = f"chdb://{tmp_path_factory.mktemp('clickhouse')}"
    store = store_module.ClickHouseStore(dsn)
    migrate_module.migrate(store)
    catalog = load_policy(REPO / "examples" / "policy.yaml").catalog

    events, outcomes = _fleet(now)
    event_rows = []
    for event in events:
        priced = price_call(event, catalog)
        event_rows.append(rows.event_row(event, priced))
        facts.calls += 1
        facts.cost_usd += priced.cost_usd
        facts.cost_by_team[event.team] += priced.cost_usd
        facts.unpriced_calls += priced.unpriced
        facts.tokens_by_task[event.task] += event.tokens.total
    assert facts.unpriced_calls > 0, "the fleet should include an unpriced model"
    store.insert("token_events", event_rows, columns=rows.TOKEN_EVENT_COLUMNS)
    store.insert(
        "task_outcomes", [rows.outcome_row(o) for o in outcomes], columns=rows.OUTCOME_COLUMNS
    )
    facts.outcomes = {o.task_id: (o.workflow, o.status) for o in outcomes}
    alerts = _alerts(now)
    store.insert("alerts", [rows.alert_row(a) for a in alerts], columns=rows.ALERT_COLUMNS)
    for alert in alerts:
        facts.alert_ids_by_team[alert.team].add(alert.alert_id)
    facts.resolved_alert = "al-runaway"
    store.insert(
        "decisions", [rows.decision_row(d) for d in _decisions(now)], columns=rows.DECISION_COLUMNS
    )
    findings, facts.latest_waste_usd = _findings(now)
    store.insert("findings", [rows.finding_row(f) for f in findings], columns=rows.FINDING_COLUMNS)
    for i, (receiver, result) in enumerate(
        [
            ("search-hook", "delivered"),
            ("search-hook", "failed"),
            ("search-hook", "delivered"),
            ("console", "delivered"),
            ("ops-mail", "dead_letter"),
        ]
    ):
        store.record_notification(
            alert_id="al-runaway",
            fingerprint="runaway|…",
            receiver=receiver,
            attempt=i + 1,
            result=result,
            error=None if result == "delivered" else "HTTP 503",
            latency_ms=40 * (i + 1),
            ts=now - timedelta(minutes=170 - i),
        )
    try:
        yield Populated(store, dsn, facts)
    finally:
        store.close()


def _queries() -> list[tuple[str, str, int]]:
    """(where, rawSql, format) for every target and variable of every committed dashboard."""
    found = []
    for path in DASHBOARD_FILES:
        model = json.loads(path.read_text())
        for var in model["templating"]["list"]:
            found.append((f"{path.name} variable {var['name']}", var["query"]["rawSql"], 1))
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                where = f"{path.name} panel {panel['id']} {panel['title']!r} {target['refId']}"
                found.append((where, target["rawSql"], target["format"]))
    return found


def _all() -> dict[str, VariableValue]:
    return {name: VariableValue.all(all_value=ALL_VALUE) for name in ("team", "workflow", "model")}


SELECTIONS = {
    "all": _all(),
    "narrow": {
        "team": VariableValue(values=("search",)),
        "workflow": VariableValue(values=("support-triage",)),
        "model": VariableValue(values=("gpt-4.1-mini",)),
    },
    "several-with-quote": {
        **_all(),
        "team": VariableValue(values=("o'brien", "search", "support")),
        "model": VariableValue(values=("gpt-4.1-mini", "o4-mini")),
    },
}


def _run(populated: Populated, sql: str, variables: dict[str, VariableValue]) -> Any:
    facts = populated.facts
    rendered = render_query(
        sql, time_range=TimeRange(facts.start, facts.end), interval=INTERVAL, variables=variables
    )
    return populated.store.query(rendered)


def test_dashboards_exist_and_have_queries() -> None:
    assert len(DASHBOARD_FILES) == 4
    assert all(path.is_file() for path in DASHBOARD_FILES)
    assert len(_queries()) > 30


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
def test_every_panel_query_runs(populated: Populated, selection: str) -> None:
    failures = []
    empty_time_series = []
    for where, sql, fmt in _queries():
        try:
            result = _run(populated, sql, SELECTIONS[selection])
        except Exception as exc:  # collect every failure, not only the first
            failures.append(f"{where}: {exc}")
            continue
        if fmt == 0:
            assert result.columns[0] == "time", where
            assert result.types[0].startswith("DateTime"), (where, result.types[0])
            if selection == "all" and not result.rows:
                empty_time_series.append(where)
    assert failures == [], "\n".join(failures)
    assert empty_time_series == [], "time series with no data on a populated store"


def _panel_sql(dashboard: str, title: str, ref: str = "A") -> str:
    model = json.loads((REPO / "grafana" / "dashboards" / f"{dashboard}.json").read_text())
    (panel,) = [p for p in model["panels"] if p.get("title") == title and "targets" in p]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref]
    return str(target["rawSql"])


def test_finops_numbers_match_what_was_inserted(populated: Populated) -> None:
    facts = populated.facts
    total = _run(populated, _panel_sql("tokengov-finops", "Spend"), _all()).scalar()
    assert total == facts.cost_usd
    by_team = {
        r["team"]: r["spend_usd"]
        for r in _run(populated, _panel_sql("tokengov-finops", "Spend by team"), _all()).dicts()
        if "team" in r
    }
    assert by_team == dict(facts.cost_by_team)
    table = _run(populated, _panel_sql("tokengov-finops", "Top tasks by cost"), _all()).dicts()
    assert len(table) == 20
    assert table[0]["task_cost_usd"] >= table[-1]["task_cost_usd"]
    unpriced = _run(populated, _panel_sql("tokengov-finops", "Unpriced calls"), _all()).scalar()
    assert unpriced == facts.unpriced_calls
    models = _run(populated, _panel_sql("tokengov-finops", "Unpriced models"), _all()).dicts()
    assert [m["model"] for m in models] == [UNPRICED]
    coverage = _run(populated, _panel_sql("tokengov-finops", "Attribution coverage"), _all())
    assert coverage.scalar() == pytest.approx((facts.calls - 1) / facts.calls)
    narrow = _run(
        populated,
        _panel_sql("tokengov-finops", "Spend"),
        {**_all(), "team": VariableValue(values=("search",))},
    ).scalar()
    assert narrow == facts.cost_by_team["search"]


def test_unit_economics_match_a_hand_computation(populated: Populated) -> None:
    facts = populated.facts
    per_workflow = {
        r["workflow"]: r
        for r in _run(
            populated, _panel_sql("tokengov-unit-economics", "Unit economics per workflow"), _all()
        ).dicts()
    }
    for workflow in ("support-triage", "refund-agent"):
        tasks = [t for t, (w, _s) in facts.outcomes.items() if w == workflow]
        successes = sum(facts.outcomes[t][1] == "success" for t in tasks)
        row = per_workflow[workflow]
        assert row["tasks"] == len(tasks)
        assert row["success_rate"] == pytest.approx(successes / len(tasks))
        assert row["tokens_per_success"] == pytest.approx(
            sum(facts.tokens_by_task[t] for t in tasks) / successes
        )


def test_governance_and_debt_numbers(populated: Populated) -> None:
    facts = populated.facts
    alerts = _run(populated, _panel_sql("tokengov-governance", "Alerts by team"), _all()).dicts()
    counted: dict[str, int] = defaultdict(int)
    for row in alerts:
        counted[row["team"]] += row["alerts"]
    assert counted == {team: len(ids) for team, ids in facts.alert_ids_by_team.items()}
    budget = _run(
        populated, _panel_sql("tokengov-governance", "Budget alerts against limits"), _all()
    ).dicts()
    assert {(r["team"], r["observed"], r["limit"]) for r in budget} == {
        ("search", 161.2, 200.0),
        ("support", 90.0, 100.0),
    }
    delivery = {
        r["receiver"]: r
        for r in _run(
            populated, _panel_sql("tokengov-governance", "Delivery by receiver"), _all()
        ).dicts()
    }
    assert delivery["search-hook"]["success_share"] == pytest.approx(2 / 3)
    assert delivery["ops-mail"]["failed_attempts"] == 1
    decisions = _run(
        populated,
        _panel_sql("tokengov-governance", "Recent decisions"),
        {**_all(), "team": VariableValue(values=("support",))},
    ).dicts()
    assert [d["action"] for d in decisions] == ["throttle", "fallback", "pause"]
    waste = _run(populated, _panel_sql("tokengov-token-debt", "Estimated waste per day"), _all())
    assert waste.scalar() == facts.latest_waste_usd


def test_variables_list_what_exists(populated: Populated) -> None:
    model = json.loads((REPO / "grafana" / "dashboards" / "tokengov-finops.json").read_text())
    variables = {v["name"]: v["query"]["rawSql"] for v in model["templating"]["list"]}
    teams = [r[0] for r in _run(populated, variables["team"], _all()).rows]
    assert sorted(teams) == sorted([*TEAMS, "unattributed"])
    workflows = [
        r[0]
        for r in _run(
            populated, variables["workflow"], {**_all(), "team": VariableValue(values=("search",))}
        ).rows
    ]
    assert sorted(workflows) == sorted(TEAMS["search"])


def test_alerts_become_annotations_once(populated: Populated, fake_grafana: FakeGrafana) -> None:
    facts = populated.facts
    marks = read_alert_marks(lambda sql, p: populated.store.query(sql, p).dicts(), facts.start)
    assert sorted(m.alert_id for m in marks) == sorted(
        a for ids in facts.alert_ids_by_team.values() for a in ids
    )
    runaway = next(m for m in marks if m.alert_id == facts.resolved_alert)
    assert runaway.ends_at is not None and runaway.ends_at > runaway.starts_at
    with GrafanaAPI(fake_grafana.url, SecretStr("editor-token")) as api:
        assert sync(api, alerts=marks, now=facts.end).annotations_posted == len(marks)


def test_cli_sync_end_to_end(
    populated: Populated, fake_grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENGOV_CLICKHOUSE_URL", populated.dsn)
    monkeypatch.setenv("TOKENGOV_GRAFANA_URL", fake_grafana.url)
    monkeypatch.setenv("TOKENGOV_GRAFANA_TOKEN", "admin-token")
    args = [
        "grafana",
        "sync",
        "--since",
        "2d",
        "--datasource-url",
        "clickhouse://grafana_reader:pw@clickhouse:9000/tokengov",
    ]
    alerts = sum(len(ids) for ids in populated.facts.alert_ids_by_team.values())
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"{alerts} posted, 0 already there" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert f"0 posted, {alerts} already there" in second.output
    assert fake_grafana.rejected == [] and len(fake_grafana.annotations) == alerts

    monkeypatch.setenv("TOKENGOV_GRAFANA_TOKEN", "wrong")
    denied = CliRunner().invoke(app, args)
    assert denied.exit_code == 1 and "rejected the token" in denied.output


def test_cli_sync_reads_alerts_through_the_running_owner(
    populated: Populated, fake_grafana: FakeGrafana, tmp_path: Path
) -> None:
    """While a worker owns the embedded store (here: this process, serving a real query
    endpoint), ``tokengov grafana sync`` in another process reads the alerts through it."""
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "TOKENGOV_CLICKHOUSE_URL": populated.dsn,
        "TOKENGOV_DATA_DIR": str(tmp_path),
        "TOKENGOV_GRAFANA_URL": fake_grafana.url,
        "TOKENGOV_GRAFANA_TOKEN": "editor-token",
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "tokengov.app.cli.main", "grafana", "sync", "--since", "2d"]

    def sync_cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    held = sync_cli()  # the store is held and not served: a plain error
    assert held.returncode == 1 and "reading alerts from" in held.stderr, held.stderr
    assert "Traceback" not in held.stderr and fake_grafana.annotations == []

    endpoint = QueryEndpoint(populated.dsn, f"127.0.0.1:{free_port()}", tmp_path)
    endpoint.start()
    try:
        done = sync_cli()
    finally:
        endpoint.stop()
    assert done.returncode == 0, done.stderr
    marks = read_alert_marks(
        lambda sql, p: populated.store.query(sql, p).dicts(), utcnow() - timedelta(days=2)
    )
    assert marks and f"{len(marks)} posted, 0 already there" in done.stdout
    posted = sorted(
        (a["time"], a.get("timeEnd"), tuple(a["tags"]), a["text"]) for a in fake_grafana.annotations
    )
    expected = [m.annotation() for m in marks]
    assert posted == sorted(
        (
            int(a.time.timestamp() * 1000),
            int(a.time_end.timestamp() * 1000) if a.time_end else None,
            a.tags,
            a.text,
        )
        for a in expected
    )
