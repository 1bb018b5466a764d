"""Turning an alert into text a person can act on: what happened, where, the numbers,
the limit, the decision taken, and where to look (the Grafana dashboard).

Conventions read from the alert (docs/alerting.md): the numbers are
``evidence.observed`` and ``evidence.limit`` (any other scalar evidence is shown
too); the decision taken is ``evidence.decision`` (an action such as ``pause``, or
a decision object with ``action`` and ``reason``) or ``labels.action``.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode

from tokengov.core.contracts import Alert

__all__ = [
    "GRAFANA_DASHBOARD_UID",
    "dashboard_url",
    "decision_text",
    "facts",
    "numbers_text",
]

#: The uid of the Grafana dashboard alerts link to (the grafana part provisions it).
GRAFANA_DASHBOARD_UID: Final = "tokengov-overview"

_SKIP_EVIDENCE = {"observed", "limit", "decision", "action", "on_runaway", "on_breach"}


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None if value is None else str(value).lower()
    if isinstance(value, int | float | str):
        return f"{value:,}" if isinstance(value, int) else str(value)
    return None


def numbers_text(alert: Alert) -> str:
    """``observed 13 · limit 12`` followed by other scalar evidence."""
    parts: list[str] = []
    observed = _scalar(alert.evidence.get("observed"))
    limit = _scalar(alert.evidence.get("limit"))
    if observed is not None:
        parts.append(f"observed {observed}")
    if limit is not None:
        name = alert.labels.get("limit")
        parts.append(f"limit {limit}" + (f" ({name})" if name else ""))
    for key in sorted(alert.evidence):
        if key in _SKIP_EVIDENCE:
            continue
        shown = _scalar(alert.evidence[key])
        if shown is not None:
            parts.append(f"{key} {shown}")
    return " · ".join(parts) or "—"


def decision_text(alert: Alert) -> str:
    decision = alert.evidence.get("decision", alert.evidence.get("action"))
    if isinstance(decision, dict):
        action = decision.get("action", "?")
        scope = decision.get("scope")
        key = decision.get("key")
        where = f" {scope}:{key}" if scope and key else ""
        reason = decision.get("reason")
        return f"{action}{where}" + (f" ({reason})" if reason else "")
    if isinstance(decision, str) and decision:
        return decision
    if alert.labels.get("action"):
        return alert.labels["action"]
    # The streams name the policy's action for the alert's scope (profile or budget).
    for key in ("on_runaway", "on_breach"):
        action = alert.evidence.get(key)
        if isinstance(action, str) and action != "proceed":
            target = (
                f"task {alert.task_id}" if key == "on_runaway" and alert.task_id else alert.team
            )
            return f"{action} {target} (policy {key})"
    return "none (notify only)"


def dashboard_url(grafana_url: str | None, alert: Alert) -> str | None:
    if not grafana_url:
        return None
    params = {"var-team": alert.team}
    if alert.workflow:
        params["var-workflow"] = alert.workflow
    if alert.task_id:
        params["var-task_id"] = alert.task_id
    return f"{grafana_url.rstrip('/')}/d/{GRAFANA_DASHBOARD_UID}?{urlencode(params)}"


def facts(alert: Alert) -> list[tuple[str, str]]:
    """The fields every human-facing message shows, in order."""
    return [
        ("What", f"{alert.kind} ({alert.severity}, {alert.status})"),
        ("Team", alert.team),
        ("Workflow", alert.workflow or "—"),
        ("Task", alert.task_id or "—"),
        ("Numbers", numbers_text(alert)),
        ("Decision", decision_text(alert)),
        ("Since", alert.starts_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
