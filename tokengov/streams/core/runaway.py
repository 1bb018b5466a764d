"""Runaway detection: a task crossing a limit of its workflow's cost profile.

Each limit fires once per task, the moment the observed value first exceeds
it (``observed > limit``), naming the limit, the observed value and the limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tokengov.core.contracts import Alert, Decision
from tokengov.core.policy import CostProfile
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.decisions import runaway_decision
from tokengov.streams.core.task_state import TaskState

__all__ = ["LIMITS", "OBSERVED", "Crossing", "check_runaway", "crossings"]

#: limit name → (what the task did, as a phrase with {observed})
LIMITS: Final[dict[str, str]] = {
    "max_calls": "made {observed:,} model calls",
    "max_tool_calls": "made {observed:,} tool calls",
    "max_hops": "handed off to subagents {observed:,} times",
    "max_retries": "retried {observed:,} calls",
    "max_tokens_per_task": "used {observed:,} tokens",
    "max_context_tokens": "sent a {observed:,}-token context in one call",
}


#: limit name → the TaskState attribute it bounds
OBSERVED: Final[dict[str, str]] = {
    "max_calls": "calls",
    "max_tool_calls": "tool_calls",
    "max_hops": "hop_count",
    "max_retries": "retries",
    "max_tokens_per_task": "tokens",
    "max_context_tokens": "largest_context",
}


@dataclass(frozen=True, slots=True)
class Crossing:
    limit: str
    observed: int
    allowed: int


def crossings(task: TaskState, limits: Iterable[tuple[str, int, str]]) -> list[Crossing]:
    """Limits (name, allowed, attribute) the task exceeds and has not been alerted on yet."""
    found: list[Crossing] = []
    for limit, allowed, attribute in limits:
        observed: int = getattr(task, attribute)
        if observed > allowed and limit not in task.fired:
            found.append(Crossing(limit, observed, allowed))
    return found


def check_runaway(
    task: TaskState,
    profile: CostProfile,
    limits: Iterable[tuple[str, int, str]],
    *,
    team: str,
    event_ts: datetime,
    event_id: str,
    now: datetime,
) -> list[tuple[Alert, Decision | None]]:
    """One alert (and the profile's decision) per newly crossed limit; marks them fired."""
    out: list[tuple[Alert, Decision | None]] = []
    for c in crossings(task, limits):
        task.mark_fired(c.limit)
        did = LIMITS[c.limit].format(observed=c.observed)
        summary = f"task {task.task_id} {did}; its cost profile allows {c.allowed:,}"
        alert = make_alert(
            kind="runaway",
            fingerprint=fingerprint("runaway", team, task.workflow, task.task_id, c.limit),
            severity="critical",
            team=team,
            workflow=task.workflow,
            task_id=task.task_id,
            labels={"limit": c.limit},
            summary=summary,
            evidence={
                "observed": c.observed,
                "limit": c.allowed,
                "event_id": event_id,
                "on_runaway": profile.on_runaway,
            },
            starts_at=event_ts,
        )
        reason = f"runaway: {c.limit} {c.observed} > {c.allowed}"
        out.append((alert, runaway_decision(task.task_id, profile, reason, now)))
    return out
