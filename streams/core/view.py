"""A policy prepared for the hot path: lookups indexed once per policy generation."""

from __future__ import annotations

from streams.core.pricer import Pricer
from tokengov.policy import Budget, CostProfile, Policy, StreamsSettings

__all__ = ["PolicyView"]


class PolicyView:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.settings: StreamsSettings = policy.streams
        self.profiles: dict[str, CostProfile] = dict(policy.cost_profiles)
        self.pricer = Pricer(policy.catalog)
        self.team_budgets: dict[str, list[Budget]] = {}
        self.workflow_budgets: dict[str, list[Budget]] = {}
        self.budgets: dict[str, Budget] = {}
        for budget in policy.budgets:
            index = self.team_budgets if budget.scope == "team" else self.workflow_budgets
            index.setdefault(budget.name, []).append(budget)
            self.budgets[budget.budget_id] = budget
        self.late_grace_ms = int(self.settings.late_grace.total_seconds() * 1000)

    def budget_team(self, budget: Budget) -> str:
        """The team that owns a budget's spend: the team itself, or the workflow's owner."""
        if budget.scope == "team":
            return budget.name
        profile = self.profiles.get(budget.name)
        return profile.team if profile else "unattributed"
