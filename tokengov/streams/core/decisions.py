"""Escalation: which decision a runaway or a budget breach causes (DESIGN.md).

``proceed`` causes none (the alert is enough); ``throttle``, ``fallback`` and
``pause`` publish a decision the SDK's guard obeys until it expires.
"""

from __future__ import annotations

from datetime import datetime

from tokengov.core.contracts import Decision
from tokengov.core.policy import Budget, CostProfile

__all__ = ["budget_decision", "runaway_decision"]


def runaway_decision(
    task_id: str, profile: CostProfile, reason: str, now: datetime
) -> Decision | None:
    """The task-scoped decision of a profile's ``on_runaway``; expires after ``decision_ttl``."""
    action = profile.on_runaway
    if action == "proceed":
        return None
    return Decision(
        scope="task",
        key=task_id,
        action=action,
        reason=reason,
        fallback_model=profile.fallback_model if action == "fallback" else None,
        throttle_ms=int(profile.throttle.total_seconds() * 1000) if action == "throttle" else None,
        issued_at=now,
        expires_at=now + profile.decision_ttl,
    )


def budget_decision(
    budget: Budget, reason: str, now: datetime, period_end: datetime
) -> Decision | None:
    """The scope-wide decision of a budget's ``on_breach``; it holds until the period ends."""
    action = budget.on_breach
    if action == "proceed":
        return None
    return Decision(
        scope=budget.scope,
        key=budget.name,
        action=action,
        reason=reason,
        fallback_model=budget.fallback_model if action == "fallback" else None,
        throttle_ms=int(budget.throttle.total_seconds() * 1000) if action == "throttle" else None,
        issued_at=now,
        expires_at=max(period_end, now),
    )
