"""Token-governance maturity per team and workflow, derived from facts tokengov holds.

The ladder is cumulative; each level needs the facts of the ones below::

    unmanaged   spend not (fully) attributed to a team and workflow
    observed    spend attributed (≥ ``ATTRIBUTION_BAR`` of it)
    managed     + a budget set and a cost profile documented
    governed    + alerts routed to a receiver the owner reads (not the catch-all log)
    systemic    + every token-debt finding acted on (its waste fell after it was raised)

:func:`grade` is pure: it takes a :class:`MaturityFacts` and returns the level,
the facts that were met, and what lifts it one level. :func:`policy_facts`
derives the policy-held facts (budget, cost profile, routing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from tokengov.core.contracts import UNATTRIBUTED
from tokengov.core.policy import LogReceiver, Policy, Route

__all__ = [
    "ATTRIBUTION_BAR",
    "LEVELS",
    "Level",
    "Maturity",
    "MaturityFacts",
    "PolicyFacts",
    "grade",
    "policy_facts",
    "routed_receivers",
]

Level = Literal["unmanaged", "observed", "managed", "governed", "systemic"]
LEVELS: Final[tuple[Level, ...]] = ("unmanaged", "observed", "managed", "governed", "systemic")
ATTRIBUTION_BAR: Final = 0.95


@dataclass(frozen=True)
class MaturityFacts:
    """What tokengov knows about one team (``workflow`` None) or one workflow."""

    team: str
    workflow: str | None
    spend_usd: Decimal
    attributed_share: float  # of the spend, the share attributed to a team and a workflow
    budget_set: bool
    cost_profile_documented: bool
    alerts_routed_to_owner: bool
    findings: int  # distinct (workflow, agent, detector) with findings in the period
    findings_acted_on: int  # of those, how many had their waste fall after the first finding


@dataclass(frozen=True)
class Maturity:
    level: Level
    facts: MaturityFacts
    met: tuple[str, ...]
    to_next_level: tuple[str, ...]  # empty at the top

    @property
    def next_level(self) -> Level | None:
        index = LEVELS.index(self.level)
        return LEVELS[index + 1] if index + 1 < len(LEVELS) else None


def grade(facts: MaturityFacts) -> Maturity:
    """The highest level whose requirements (and all below) the facts meet."""
    attributed = facts.team != UNATTRIBUTED and facts.attributed_share >= ATTRIBUTION_BAR
    open_findings = facts.findings - facts.findings_acted_on
    steps: list[list[tuple[bool, str, str]]] = [
        [
            (
                attributed,
                f"spend attributed ({facts.attributed_share:.0%})",
                f"attribute spend to a team and workflow on every event "
                f"({facts.attributed_share:.0%} now; {ATTRIBUTION_BAR:.0%} needed)",
            )
        ],
        [
            (facts.budget_set, "budget set", "set a budget (policy budgets:)"),
            (
                facts.cost_profile_documented,
                "cost profile documented",
                "document a cost profile for the workflow (policy cost_profiles:)",
            ),
        ],
        [
            (
                facts.alerts_routed_to_owner,
                "alerts routed to the owner's receiver",
                "route the team's alerts to a receiver the owner reads (policy routes: or "
                "teams.<team>.receiver), not the catch-all log",
            )
        ],
        [
            (
                open_findings <= 0,
                f"findings acted on ({facts.findings_acted_on}/{facts.findings})",
                f"act on the open token-debt findings ({open_findings} of {facts.findings} "
                "without falling waste)",
            )
        ],
    ]
    met: list[str] = []
    level_index = 0
    for requirements in steps:
        missing = [todo for ok, _, todo in requirements if not ok]
        if missing:
            return Maturity(LEVELS[level_index], facts, tuple(met), tuple(missing))
        met.extend(done for _, done, _ in requirements)
        level_index += 1
    return Maturity(LEVELS[level_index], facts, tuple(met), ())


# ------------------------------------------------------------ policy-held facts


@dataclass(frozen=True)
class PolicyFacts:
    budget_set: bool
    cost_profile_documented: bool
    alerts_routed_to_owner: bool


def _matches(route: Route, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in route.match.items()):
        return False
    return all(re.fullmatch(p, labels.get(k, "")) for k, p in route.match_re.items())


def routed_receivers(route: Route, labels: dict[str, str]) -> list[tuple[str, bool]]:
    """The receivers an alert with ``labels`` reaches (Alertmanager semantics: first
    matching child wins unless it sets ``continue``; no matching child → this node),
    each with whether a route naming its team or workflow chose it."""

    def walk(node: Route, inherited: str | None, specific: bool) -> list[tuple[str, bool]]:
        receiver = node.receiver or inherited
        found: list[tuple[str, bool]] = []
        for child in node.routes:
            if _matches(child, labels):
                names = set(child.match) | set(child.match_re)
                found += walk(child, receiver, specific or bool(names & {"team", "workflow"}))
                if not child.continue_:
                    break
        if not found and receiver:
            found.append((receiver, specific))
        return found

    return walk(route, None, False)


def policy_facts(policy: Policy, team: str, workflow: str | None) -> PolicyFacts:
    """Budget, cost profile and routing facts for a team (``workflow`` None) or workflow.

    For a team: a budget on the team (or on every workflow it owns), and a cost
    profile for at least one workflow with every observed workflow covered by the caller.
    """
    team_budget = any(b.scope == "team" and b.name == team for b in policy.budgets)
    if workflow is None:
        owned = [w for w, p in policy.cost_profiles.items() if p.team == team]
        budget = team_budget or (
            bool(owned)
            and all(
                any(b.scope == "workflow" and b.name == w for b in policy.budgets) for w in owned
            )
        )
        profile = bool(owned)
    else:
        budget = team_budget or any(
            b.scope == "workflow" and b.name == workflow for b in policy.budgets
        )
        profile = workflow in policy.cost_profiles
    labels = {"kind": "debt_finding", "severity": "warning", "team": team}
    if workflow:
        labels["workflow"] = workflow
    team_receiver = policy.teams[team].receiver if team in policy.teams else None

    def owner_reads(name: str) -> bool:
        receiver = policy.receivers.get(name)
        return receiver is not None and not isinstance(receiver, LogReceiver)

    routed = any(
        owner_reads(name) and (specific or name == team_receiver)
        for name, specific in routed_receivers(policy.routes, labels)
    ) or (team_receiver is not None and owner_reads(team_receiver))
    return PolicyFacts(budget, profile, routed)
