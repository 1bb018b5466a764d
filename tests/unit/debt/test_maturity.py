"""Maturity: the ladder from facts, what lifts a level, and the policy-held facts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokengov.core.policy import parse_policy
from tokengov.streams.debt.maturity import MaturityFacts, grade, policy_facts, routed_receivers


def facts(**overrides) -> MaturityFacts:
    base = dict(
        team="search",
        workflow="triage",
        spend_usd=Decimal(10),
        attributed_share=1.0,
        budget_set=True,
        cost_profile_documented=True,
        alerts_routed_to_owner=True,
        findings=2,
        findings_acted_on=2,
    )
    return MaturityFacts(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "level", "lift"),
    [
        ({"attributed_share": 0.5}, "unmanaged", "attribute spend"),
        ({"team": "unattributed"}, "unmanaged", "attribute spend"),
        ({"budget_set": False}, "observed", "set a budget"),
        ({"cost_profile_documented": False}, "observed", "document a cost profile"),
        ({"alerts_routed_to_owner": False}, "managed", "route the team's alerts"),
        ({"findings_acted_on": 1}, "governed", "act on the open token-debt findings (1 of 2"),
        ({}, "systemic", None),
        ({"findings": 0, "findings_acted_on": 0}, "systemic", None),
    ],
)
def test_ladder(overrides, level, lift) -> None:
    m = grade(facts(**overrides))
    assert m.level == level
    if lift is None:
        assert m.to_next_level == () and m.next_level is None
    else:
        assert any(step.startswith(lift) for step in m.to_next_level), m.to_next_level


def test_a_missing_lower_fact_caps_the_level_and_lists_all_missing_at_that_step() -> None:
    m = grade(facts(budget_set=False, cost_profile_documented=False, alerts_routed_to_owner=False))
    assert m.level == "observed" and m.next_level == "managed"
    assert len(m.to_next_level) == 2
    assert m.met == ("spend attributed (100%)",)


POLICY = """
version: 1
teams:
  search: {owner: s@example.com}
  growth: {owner: g@example.com, receiver: growth-mail}
  ops: {owner: o@example.com, receiver: console}
receivers:
  console: {type: log}
  search-hook: {type: webhook, url: "http://127.0.0.1:9/x"}
  growth-mail: {type: email, to: [g@example.com]}
  audit: {type: webhook, url: "http://127.0.0.1:9/audit"}
cost_profiles:
  triage: {team: search}
  ads: {team: growth}
budgets:
  - {scope: workflow, name: triage, period: day, limit_usd: 10}
  - {scope: team, name: growth, period: month, limit_usd: 100}
routes:
  receiver: console
  routes:
    - {match: {kind: debt_finding}, receiver: audit, continue: true}
    - {match_re: {team: "sea.*"}, receiver: search-hook}
"""


def test_policy_facts() -> None:
    policy = parse_policy(POLICY)
    search = policy_facts(policy, "search", "triage")
    assert (search.budget_set, search.cost_profile_documented, search.alerts_routed_to_owner) == (
        True,
        True,
        True,
    )
    other = policy_facts(policy, "search", "unprofiled")
    assert (other.budget_set, other.cost_profile_documented) == (False, False)
    growth = policy_facts(policy, "growth", None)
    assert growth.budget_set and growth.cost_profile_documented and growth.alerts_routed_to_owner
    # ops: only the catch-all log and a route that is not the team's own
    ops = policy_facts(policy, "ops", None)
    assert not ops.alerts_routed_to_owner and not ops.budget_set


def test_routed_receivers_follow_alertmanager_semantics() -> None:
    policy = parse_policy(POLICY)
    labels = {"kind": "debt_finding", "team": "search", "severity": "warning"}
    assert routed_receivers(policy.routes, labels) == [("audit", False), ("search-hook", True)]
    assert routed_receivers(policy.routes, {"kind": "runaway", "team": "ops"}) == [
        ("console", False)
    ]
