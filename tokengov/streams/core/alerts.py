"""Alert construction: stable fingerprints (DESIGN.md) and deterministic alert ids.

A fingerprint names *what* fired, so that one condition fires once:

    runaway|search|support-triage|t-8812|max_tool_calls
    retry_storm|search|support-triage|t-8812|step-3
    loop|search|support-triage|t-8812|search_docs
    budget_threshold|search|team:search:day|2026-11-29|usd|0.8
    budget_forecast|search|team:search:day|2026-11-29
    missing_cost_profile|growth|new-flow|2026-11-29
    unpriced_model|search|gpt-9|2026-11-29
    attribution_coverage|unattributed|1h|2026-11-29T05:00:00.000Z

The alert id is a UUIDv5 of the fingerprint: if an alert is ever published
twice (it should not be), both copies carry the same id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal

from tokengov.core.contracts import Alert, AlertKind

__all__ = ["ALERT_NAMESPACE", "fingerprint", "make_alert"]

ALERT_NAMESPACE: Final = uuid.UUID("6f1c1b1e-7d0a-4c55-9a57-2b0f0c1d7e42")


def fingerprint(kind: str, *parts: object) -> str:
    return "|".join([kind, *(str(p) for p in parts)])


def make_alert(
    *,
    kind: AlertKind,
    fingerprint: str,
    severity: Literal["info", "warning", "critical"],
    team: str,
    summary: str,
    starts_at: datetime,
    workflow: str | None = None,
    task_id: str | None = None,
    labels: dict[str, str] | None = None,
    evidence: dict[str, Any] | None = None,
) -> Alert:
    return Alert(
        alert_id=str(uuid.uuid5(ALERT_NAMESPACE, fingerprint)),
        fingerprint=fingerprint,
        kind=kind,
        severity=severity,
        team=team,
        workflow=workflow,
        task_id=task_id,
        labels=labels or {},
        summary=summary,
        evidence=evidence or {},
        starts_at=starts_at,
    )
