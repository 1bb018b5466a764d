"""A policy prepared for the hot path: lookups indexed once per policy generation."""

from __future__ import annotations

from typing import Final

from tokengov.core.policy import Budget, CostProfile, Policy, StreamsSettings
from tokengov.core.pricing import Pricer
from tokengov.streams.core.runaway import OBSERVED

__all__ = ["LIMIT_NAMES", "UNCHECKED", "UNLIMITED", "PolicyView"]

LIMIT_NAMES: Final = (
    "max_calls",
    "max_tool_calls",
    "max_hops",
    "max_retries",
    "max_tokens_per_task",
    "max_context_tokens",
)

#: Above any count a task can reach (token sums are Python ints: no overflow)
UNLIMITED: Final = 1 << 256
#: The batched path's pre-test bound for a limit a profile does not set: the largest int of
#: one 30-bit digit, so that CPython 3.11 compares a task's count with it by its specialised
#: int comparison (with :data:`UNLIMITED`, a generic one); a count above it only costs the
#: exact check, which finds no limit to cross there.
UNCHECKED: Final = (1 << 30) - 1

#: per workflow: the pre-test bound of each limit in :data:`LIMIT_NAMES` order, then the loop
#: limit (``max_same_tool_calls``)
Bounds = tuple[int, int, int, int, int, int, int]


def _bounds(profile: CostProfile, loop_limit: int) -> Bounds:
    b = [UNCHECKED if (v := getattr(profile, n)) is None else int(v) for n in LIMIT_NAMES]
    return (b[0], b[1], b[2], b[3], b[4], b[5], loop_limit)


class PolicyView:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.settings: StreamsSettings = policy.streams
        self.profiles: dict[str, CostProfile] = dict(policy.cost_profiles)
        self.pricer = Pricer(policy.catalog)
        self.team_budgets: dict[str, tuple[Budget, ...]] = {}
        self.workflow_budgets: dict[str, tuple[Budget, ...]] = {}
        self.budgets: dict[str, Budget] = {}
        for budget in policy.budgets:
            index = self.team_budgets if budget.scope == "team" else self.workflow_budgets
            index[budget.name] = (*index.get(budget.name, ()), budget)
            self.budgets[budget.budget_id] = budget
        #: per workflow: the limits its profile sets, as (name, allowed, TaskState attribute)
        self.limits: dict[str, tuple[tuple[str, int, str], ...]] = {
            wf: tuple((n, v, OBSERVED[n]) for n in LIMIT_NAMES if (v := getattr(p, n)) is not None)
            for wf, p in self.profiles.items()
        }
        self.loop_limits: dict[str, int] = {
            wf: p.max_same_tool_calls or self.settings.default_max_same_tool_calls
            for wf, p in self.profiles.items()
        }
        self.default_loop_limit = self.settings.default_max_same_tool_calls
        #: per workflow with a profile: the allowed value of each limit in :data:`LIMIT_NAMES`
        #: order (:data:`UNCHECKED` where the profile sets none), for stage 1's one test of
        #: whether a call may have crossed any of them, then its loop limit (one lookup a call)
        self.limit_bounds: dict[str, Bounds] = {
            wf: _bounds(p, self.loop_limits[wf]) for wf, p in self.profiles.items()
        }
        #: the same for a workflow without a profile: no runaway limit, the default loop limit
        u = UNLIMITED
        self.unprofiled_bounds: Bounds = (u, u, u, u, u, u, self.default_loop_limit)
        self.late_grace_ms = int(self.settings.late_grace.total_seconds() * 1000)
        self.clock_ahead_ms = int(self.settings.max_clock_ahead.total_seconds() * 1000)
        self.clock_behind_ms = int(self.settings.max_clock_behind.total_seconds() * 1000)

    def loop_limit(self, workflow: str) -> int:
        return self.loop_limits.get(workflow, self.default_loop_limit)

    def budget_team(self, budget: Budget) -> str:
        """The team that owns a budget's spend: the team itself, or the workflow's owner."""
        if budget.scope == "team":
            return budget.name
        profile = self.profiles.get(budget.name)
        return profile.team if profile else "unattributed"
