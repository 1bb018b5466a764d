"""Once-per-day alerts (stage 2): a workflow without a cost profile, a model without a price,
a workflow whose calls carry no usage."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from tokengov.core.contracts import Alert
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.codec import big

__all__ = ["missing_profile_alert", "missing_usage_alert", "unpriced_model_alert"]


def _workflow_day_alert(
    kind: Literal["missing_cost_profile", "missing_usage"],
    workflow: str,
    team: str,
    day: str,
    calls: int,
    summary: str,
    now: datetime,
) -> Alert:
    """A warning about one workflow on one day (its fingerprint: kind, team, workflow, day)."""
    return make_alert(
        kind=kind,
        fingerprint=fingerprint(kind, team, workflow, day),
        severity="warning",
        team=team,
        workflow=workflow,
        labels={"day": day},
        summary=summary,
        evidence={"calls": calls, "day": day},
        starts_at=now,
    )


def missing_profile_alert(
    workflow: str, team: str, day: str, calls: int | str, now: datetime
) -> Alert:
    calls = big(calls)  # a partial writes sums beyond 64 bits as text
    return _workflow_day_alert(
        "missing_cost_profile",
        workflow,
        team,
        day,
        calls,
        f"workflow {workflow} (team {team}) runs in production without a cost profile: "
        f"{calls:,} calls on {day} so far; add one under cost_profiles in the policy",
        now,
    )


def unpriced_model_alert(
    model: str, team: str, day: str, calls: int | str, tokens: int | str, now: datetime
) -> Alert:
    calls, tokens = big(calls), big(tokens)  # a partial writes sums beyond 64 bits as text
    return make_alert(
        kind="unpriced_model",
        fingerprint=fingerprint("unpriced_model", team, model, day),
        severity="warning",
        team=team,
        labels={"model": model, "day": day},
        summary=(
            f"model {model} has no price in the policy: {calls:,} calls ({tokens:,} tokens) on "
            f"{day} were costed $0 and marked unpriced; add it under prices"
        ),
        evidence={"model": model, "calls": calls, "tokens": tokens, "day": day},
        starts_at=now,
    )


def missing_usage_alert(
    workflow: str, team: str, day: str, calls: int | str, now: datetime
) -> Alert:
    calls = big(calls)  # a partial writes sums beyond 64 bits as text
    return _workflow_day_alert(
        "missing_usage",
        workflow,
        team,
        day,
        calls,
        f"workflow {workflow} (team {team}) records calls without usage: {calls:,} calls "
        f"on {day} so far carry no token counts, so their cost is unknown (recorded as "
        "missing_usage, not as free); request usage (e.g. stream_options include_usage)",
        now,
    )
