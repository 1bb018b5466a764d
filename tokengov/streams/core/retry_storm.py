"""Retry storms: retries of one step without backoff, or more of them than allowed.

Backoff means the gaps between attempts grow. With gaps ``g1 … gn`` (by
attempt number), the average growth per retry is ``(gn / g1) ** (1 / (n-1))``;
below ``retry_backoff_growth`` (default 1.3) the retries have no backoff —
exponential backoff, even jittered, grows by ~2, constant-interval or
immediate retries by ~1. The check starts once a step has
``retry_storm_min_retries`` retries. Independently, more retries of one step
than the profile's ``max_retries`` is a storm. One alert per task and step.
"""

from __future__ import annotations

import itertools
from datetime import datetime

from tokengov.core.contracts import Alert
from tokengov.core.policy import CostProfile, StreamsSettings
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.task_state import TaskState

__all__ = ["backoff_growth", "check_retry_storm"]


def backoff_growth(attempts: list[list[int]]) -> float | None:
    """Average growth of the gaps between attempts; None with fewer than two gaps."""
    ordered = sorted(attempts)
    times = [ts for _, ts in ordered]
    gaps = [max(b - a, 1) for a, b in itertools.pairwise(times)]
    if len(gaps) < 2:
        return None
    return float((gaps[-1] / gaps[0]) ** (1 / (len(gaps) - 1)))


def check_retry_storm(
    task: TaskState,
    step: int,
    attempts: list[list[int]],
    profile: CostProfile | None,
    settings: StreamsSettings,
    *,
    team: str,
    event_ts: datetime,
    event_id: str,
) -> Alert | None:
    key = f"retry_storm:{step}"
    if task.has_fired(key):
        return None
    retries = sum(1 for attempt, _ in attempts if attempt > 1)
    if retries == 0:
        return None
    max_retries = profile.max_retries if profile is not None else None
    too_many = max_retries is not None and retries > max_retries
    if not too_many and retries < settings.retry_storm_min_retries:
        return None  # neither check can fire (the growth is not worked out for nothing)
    growth = backoff_growth(attempts)
    reason: str | None = None
    if too_many:
        reason = f"step {step} retried {retries} times; its cost profile allows {max_retries}"
    elif growth is not None and growth < settings.retry_backoff_growth:
        reason = (
            f"step {step} retried {retries} times without backoff "
            f"(gaps grow ×{growth:.2f} per retry; backoff needs ×{settings.retry_backoff_growth})"
        )
    if reason is None:
        return None
    task.mark_fired(key)
    times = [ts for _, ts in sorted(attempts)]
    return make_alert(
        kind="retry_storm",
        fingerprint=fingerprint("retry_storm", team, task.workflow, task.task_id, f"step-{step}"),
        severity="warning",
        team=team,
        workflow=task.workflow,
        task_id=task.task_id,
        labels={"step": str(step)},
        summary=f"task {task.task_id}: {reason}",
        evidence={
            "step": step,
            "retries": retries,
            "max_retries": max_retries,
            "gap_growth": None if growth is None else round(growth, 3),
            "gaps_ms": [b - a for a, b in itertools.pairwise(times)],
            "event_id": event_id,
        },
        starts_at=event_ts,
    )
