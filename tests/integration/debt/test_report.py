"""The scripted fleet end to end: its events through the DebtEngine, events and findings into
a real ClickHouse engine (chdb), the report built from there and opened in headless chromium.

Tolerance: every wasteful pattern's estimated waste per day is within 25% of what the
fleet actually wasted (its tokens beyond its well-designed twin's, per day); the
models' known biases are smaller (see docs/debt.md), the rest is the fleet's noise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.app.debt_fleet import FleetRun, fleet_policy_yaml, scripted_fleet
from tokengov.app.local.broker import free_port
from tokengov.app.report import build_report, render_html
from tokengov.core.calls import from_model
from tokengov.core.contracts import CallEvent, Outcome, utcnow
from tokengov.core.policy import Policy, parse_policy
from tokengov.sinks.clickhouse.endpoint import QueryEndpoint, read_token
from tokengov.sinks.clickhouse.reader import EndpointReader
from tokengov.streams.debt.engine import DebtEngine
from tokengov.streams.debt.findings import Finding

pytestmark = pytest.mark.integration

TOLERANCE = 0.25
ROOT = Path(__file__).resolve().parents[3]

POLICY_EXTRA = """
receivers:
  support-hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
  console: {type: log}
cost_profiles:
  chat-resend: {team: support, quality_bar: 0.85}
  chat-summarized: {team: support, quality_bar: 0.85}
budgets:
  - {scope: team, name: support, period: day, limit_usd: 50}
routes:
  receiver: console
  routes:
    - {match: {team: support}, receiver: support-hook}
"""


def _fleet() -> tuple[FleetRun, Policy, list[Finding]]:
    end = utcnow().replace(microsecond=0) - timedelta(hours=1)
    run = scripted_fleet(end=end)
    policy = parse_policy(fleet_policy_yaml() + POLICY_EXTRA)
    engine = DebtEngine(policy, clock=lambda: end)
    for event in run.events:
        engine.observe(from_model(event))
    return run, policy, engine.flush(end).findings


@pytest.fixture(scope="module")
def fleet() -> tuple[FleetRun, Policy, list[Finding]]:
    return _fleet()


def test_report_lists_each_pattern_within_tolerance(store, fleet, tmp_path: Path, chromium) -> None:
    run, policy, findings = fleet
    store.insert_events(run.events, policy.catalog)
    store.insert_events(run.events[:50], policy.catalog)  # a replay counts once
    store.roll_up()
    store.insert_findings(findings)
    since = (run.end - timedelta(days=7)).date()
    reader = store.reader()
    try:
        data = build_report(reader, policy, since=since, now=run.end)
    finally:
        reader.close()

    listed = {(f.workflow, f.detector): f for f in data.findings}
    for pattern in run.patterns:
        finding = listed.get((pattern.wasteful, pattern.detector))
        assert finding is not None, f"{pattern.wasteful}: no {pattern.detector} finding"
        actual = run.actual_waste_tokens_per_day(pattern.wasteful)
        assert abs(finding.waste_tokens_per_day - actual) <= TOLERANCE * actual, (
            pattern.wasteful,
            finding.waste_tokens_per_day,
            actual,
        )
        assert finding.waste_usd_per_day > 0 and finding.better_pattern
        assert not any(f.workflow == pattern.twin for f in data.findings), pattern.twin
    assert len(data.findings) == len(run.patterns)
    usd = [f.waste_usd_per_day for f in data.findings]
    assert usd == sorted(usd, reverse=True)

    # unit metrics agree with the fleet's own counts
    calls = [e for e in run.events if isinstance(e, CallEvent)]
    outcomes = [e for e in run.events if isinstance(e, Outcome)]
    units = {u.workflow: u for u in data.workflows}
    for workflow in ("chat-resend", "kb-repeat"):
        mine = [e for e in calls if e.workflow == workflow]
        assert units[workflow].calls == len(mine)
        assert units[workflow].tokens == sum(e.tokens.total for e in mine)
        ends = [o for o in outcomes if o.workflow == workflow]
        bar = 0.85 if workflow == "chat-resend" else None
        assert units[workflow].outcomes == len(ends)
        assert units[workflow].met_bar == sum(o.met_quality_bar(bar) for o in ends)
    assert data.total_tokens == sum(e.tokens.total for e in calls)
    assert set(data.tokens_per_outcome) and all(
        v > 0 for s in data.tokens_per_outcome.values() for _, v in s
    )

    # maturity: support has a budget and a routed receiver; findings are open
    levels = {(m.facts.team, m.facts.workflow): m for m in data.maturity}
    assert levels[("support", "chat-summarized")].level == "systemic"
    assert levels[("support", "chat-resend")].level == "governed"
    assert levels[("search", None)].level == "observed"

    # the HTML report in a real browser
    page = tmp_path / "report.html"
    page.write_text(render_html(data), encoding="utf-8")
    check = chromium(page)
    assert check.console_errors == [] and check.exceptions == [] and check.log_errors == []
    charts = check.probe["charts"]
    assert {c["id"] for c in charts} == {"chart-spend", "chart-waste", "chart-tokens-per-outcome"}
    for chart in charts:
        assert chart["visible"] and chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["marks"] > 0, chart
    rows = check.probe["findings"]
    assert rows is not None and len(rows) == len(run.patterns)
    ranked = [f"{f.workflow} / {f.agent}" if f.agent else f.workflow for f in data.findings]
    assert [row[2].replace("\n", " ") for row in rows] == ranked
    assert check.probe["resources"] == []  # nothing fetched: self-contained


def test_cli_writes_the_report(store, fleet, tmp_path: Path) -> None:
    run, policy, findings = fleet
    store.insert_events(run.events, policy.catalog)
    store.roll_up()
    store.insert_findings(findings)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(fleet_policy_yaml() + POLICY_EXTRA)
    out = tmp_path / "debt.html"
    result = CliRunner().invoke(
        app,
        [
            "debt",
            "report",
            "--since",
            "10d",
            "--team",
            "support",
            "--out",
            str(out),
            "--clickhouse-url",
            store.dsn,
            "--policy",
            str(policy_file),
        ],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "chat-resend" in html and "concierge-replay" in html and "faq-growing" in html
    assert "kb-repeat" not in html  # another team's
    assert "Token-debt report" in result.output and "history resend" not in result.output.lower()
    bad = CliRunner().invoke(
        app, ["debt", "report", "--since", "yesterday", "--clickhouse-url", store.dsn]
    )
    assert bad.exit_code != 0 and "neither a duration" in bad.output


def test_falling_waste_counts_as_acted_on(store, fleet) -> None:
    run, policy, findings = fleet
    store.insert_events(run.events, policy.catalog)
    store.roll_up()
    first = next(f for f in findings if f.workflow == "chat-resend")
    later = first.model_copy(
        update={
            "finding_id": "later",
            "ts": first.ts + timedelta(hours=2),
            "estimated_waste_tokens_per_day": first.estimated_waste_tokens_per_day // 4,
        }
    )
    store.insert_findings([first, later])
    reader = store.reader()
    try:
        data = build_report(reader, policy, since=(run.end - timedelta(days=7)).date(), now=run.end)
    finally:
        reader.close()
    [row] = data.findings
    assert row.acted_on and row.times == 2 and row.finding_id == "later"
    assert row.first_waste_tokens_per_day == first.estimated_waste_tokens_per_day
    assert data.open_waste_usd_per_day == 0
    levels = {(m.facts.team, m.facts.workflow): m.level for m in data.maturity}
    assert levels[("support", "chat-resend")] == "systemic"


GENERATED = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("TOKENGOV_CLICKHOUSE_URL", None)
    env.pop("TOKENGOV_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "tokengov.app.cli.main", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debt_report_reads_through_the_running_owner(store, fleet, tmp_path: Path) -> None:
    run, policy, findings = fleet
    store.insert_events(run.events, policy.catalog)
    store.roll_up()
    store.insert_findings(findings)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(fleet_policy_yaml() + POLICY_EXTRA)
    since = (run.end - timedelta(days=7)).date()
    args = ("debt", "report", "--since", since.isoformat(), "--policy", str(policy_file))

    # Held by this process and not served: the CLI cannot open it, and says so plainly.
    held = cli(*args, data_dir=tmp_path)
    assert held.returncode == 1, held.stdout
    assert "cannot open ClickHouse" in held.stderr and "Traceback" not in held.stderr

    endpoint = QueryEndpoint(store.dsn, f"127.0.0.1:{free_port()}", tmp_path)
    endpoint.start()
    try:
        out = tmp_path / "debt.html"
        done = cli(*args, "--team", "support", "--out", str(out), data_dir=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "Token-debt report" in done.stdout and f"wrote {out}" in done.stdout

        now = utcnow()
        through_endpoint = EndpointReader(endpoint.host, endpoint.port, read_token(tmp_path))
        try:
            served = build_report(through_endpoint, policy, since=since, team="support", now=now)
        finally:
            through_endpoint.close()
        direct = store.reader()
        try:
            expected = build_report(direct, policy, since=since, team="support", now=now)
        finally:
            direct.close()
    finally:
        endpoint.stop()

    # The endpoint's values are the store's: the same report, field for field.
    assert served == expected
    assert {f.workflow for f in expected.findings} >= {"chat-resend", "faq-growing"}
    assert expected.findings and all(f.team == "support" for f in expected.findings)
    # And the CLI's HTML is that report.
    html = out.read_text()
    assert GENERATED.sub("", html) == GENERATED.sub("", render_html(expected))
