"""Build the debt report's data from ClickHouse and the policy."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson

from tokengov.app.report.model import DaySpend, FindingRow, ReportData, WorkflowUnits
from tokengov.app.report.queries import (
    QueryClient,
    fetch,
    findings_sql,
    outcomes_by_day_sql,
    spend_by_day_sql,
    spend_by_workflow_day_sql,
)
from tokengov.core.contracts import UNATTRIBUTED
from tokengov.core.policy import Policy
from tokengov.streams.debt.findings import AREAS
from tokengov.streams.debt.maturity import Maturity, MaturityFacts, grade, policy_facts

__all__ = ["WASTE_FALL_ACTED_ON", "build_report"]

#: A finding counts as acted on when its latest waste estimate is at most this share
#: of its first, or when it stopped being raised while its workflow kept running.
WASTE_FALL_ACTED_ON: Final = 0.7


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _finding(
    row: dict[str, Any], last_active: dict[tuple[str, str], date], policy: Policy
) -> FindingRow:
    first_ts, last_ts = _utc(row["first_ts"]), _utc(row["last_ts"])
    first_waste = int(row["first_waste_tokens_per_day"])
    waste = int(row["waste_tokens_per_day"])
    fell = row["times"] >= 2 and waste <= WASTE_FALL_ACTED_ON * first_waste
    active = last_active.get((row["team"], row["workflow"]))
    quiet_since = last_ts + 2 * policy.debt.reemit_interval
    stopped = active is not None and active > quiet_since.date()
    evidence = orjson.loads(row["evidence"]) if row["evidence"] else {}
    return FindingRow(
        team=row["team"],
        workflow=row["workflow"],
        agent=row["agent_name"] or None,
        detector=row["detector"],
        area=row["area"],
        finding_id=str(row["finding_id"]),
        evidence=evidence,
        waste_tokens_per_day=waste,
        waste_usd_per_day=Decimal(row["waste_usd_per_day"]),
        confidence=float(row["confidence"]),
        better_pattern=row["better_pattern"],
        first_ts=first_ts,
        last_ts=last_ts,
        first_waste_tokens_per_day=first_waste,
        times=int(row["times"]),
        acted_on=fell or stopped,
    )


def _maturity(
    policy: Policy, workflows: list[WorkflowUnits], findings: list[FindingRow]
) -> list[Maturity]:
    rows: list[Maturity] = []
    teams: dict[str, list[WorkflowUnits]] = {}
    for units in workflows:
        teams.setdefault(units.team, []).append(units)
    for team, owned in sorted(teams.items()):
        spend = sum((u.cost_usd for u in owned), Decimal(0))
        attributed = sum((u.cost_usd for u in owned if u.workflow != UNATTRIBUTED), Decimal(0))
        share = float(attributed / spend) if spend else (0.0 if team == UNATTRIBUTED else 1.0)
        team_findings = [f for f in findings if f.team == team]
        facts = policy_facts(policy, team, None)
        named = [u.workflow for u in owned if u.workflow != UNATTRIBUTED]
        rows.append(
            grade(
                MaturityFacts(
                    team=team,
                    workflow=None,
                    spend_usd=spend,
                    attributed_share=share,
                    budget_set=facts.budget_set,
                    cost_profile_documented=bool(named)
                    and all(w in policy.cost_profiles for w in named),
                    alerts_routed_to_owner=facts.alerts_routed_to_owner,
                    findings=len(team_findings),
                    findings_acted_on=sum(f.acted_on for f in team_findings),
                )
            )
        )
        for units in sorted(owned, key=lambda u: u.workflow):
            wf_findings = [f for f in team_findings if f.workflow == units.workflow]
            wf_facts = policy_facts(policy, team, units.workflow)
            attributed_wf = team != UNATTRIBUTED and units.workflow != UNATTRIBUTED
            rows.append(
                grade(
                    MaturityFacts(
                        team=team,
                        workflow=units.workflow,
                        spend_usd=units.cost_usd,
                        attributed_share=1.0 if attributed_wf else 0.0,
                        budget_set=wf_facts.budget_set,
                        cost_profile_documented=wf_facts.cost_profile_documented,
                        alerts_routed_to_owner=wf_facts.alerts_routed_to_owner,
                        findings=len(wf_findings),
                        findings_acted_on=sum(f.acted_on for f in wf_findings),
                    )
                )
            )
    return rows


def build_report(
    client: QueryClient,
    policy: Policy,
    *,
    since: date,
    team: str | None = None,
    now: datetime,
    max_outcome_series: int = 6,
) -> ReportData:
    """Query ClickHouse for ``since`` onwards (and ``team`` only, when given)."""
    days = [
        DaySpend(r["day"], Decimal(r["cost_usd"]), int(r["tokens"]), int(r["calls"]))
        for r in fetch(client, spend_by_day_sql(since, team))
    ]
    spend_rows = fetch(client, spend_by_workflow_day_sql(since, team))
    bars = {w: p.quality_bar for w, p in policy.cost_profiles.items() if p.quality_bar is not None}
    outcome_rows = fetch(client, outcomes_by_day_sql(since, team, bars))

    per_workflow: dict[tuple[str, str], dict[str, Any]] = {}
    tokens_by_day: dict[tuple[str, str, date], int] = {}
    last_active: dict[tuple[str, str], date] = {}
    for r in spend_rows:
        key = (r["team"], r["workflow"])
        acc = per_workflow.setdefault(
            key,
            {
                "calls": 0,
                "tokens": 0,
                "cost_usd": Decimal(0),
                "retries": 0,
                "errors": 0,
                "outcomes": 0,
                "successes": 0,
                "met_bar": 0,
            },
        )
        for name in ("calls", "tokens", "retries", "errors"):
            acc[name] += int(r[name])
        acc["cost_usd"] += Decimal(r["cost_usd"])
        tokens_by_day[(*key, r["day"])] = int(r["tokens"])
        last_active[key] = max(last_active.get(key, r["day"]), r["day"])
    met_by_day: dict[tuple[str, str, date], int] = {}
    for r in outcome_rows:
        key = (r["team"], r["workflow"])
        found = per_workflow.get(key)
        if found is None:
            continue  # outcomes of a workflow with no spend in the period
        for name in ("outcomes", "successes", "met_bar"):
            found[name] += int(r[name])
        met_by_day[(*key, r["day"])] = int(r["met_bar"])
    workflows = sorted(
        (WorkflowUnits(team=t, workflow=w, **acc) for (t, w), acc in per_workflow.items()),
        key=lambda u: u.cost_usd,
        reverse=True,
    )
    series: dict[str, list[tuple[date, float]]] = {}
    for units in workflows[:max_outcome_series]:
        points = [
            (day, tokens_by_day[(units.team, units.workflow, day)] / met)
            for (t, w, day), met in sorted(met_by_day.items())
            if (t, w) == (units.team, units.workflow) and met > 0 and (t, w, day) in tokens_by_day
        ]
        if points:
            series[units.workflow] = points

    since_ts = datetime(since.year, since.month, since.day, tzinfo=UTC)
    findings = [
        _finding(r, last_active, policy) for r in fetch(client, findings_sql(since_ts, team))
    ]
    findings.sort(key=lambda f: (f.acted_on, -f.waste_usd_per_day, -f.waste_tokens_per_day))
    waste_by_area: dict[str, Decimal] = {area: Decimal(0) for area in AREAS}
    for f in findings:
        if not f.acted_on and f.area in waste_by_area:
            waste_by_area[f.area] += f.waste_usd_per_day
    return ReportData(
        generated_at=now,
        since=since,
        team=team,
        days=days,
        findings=findings,
        workflows=workflows,
        tokens_per_outcome=series,
        maturity=_maturity(policy, workflows, findings),
        waste_by_area=waste_by_area,
    )


def default_since(now: datetime, days: int = 14) -> date:
    return (now - timedelta(days=days)).date()
