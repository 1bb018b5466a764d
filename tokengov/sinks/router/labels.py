"""The labels routing, silences and inhibition see for an alert.

They are :meth:`tokengov.core.contracts.Alert.label_set` (kind, severity, team,
workflow, task_id and the alert's ``labels``) plus a few labels derived for
budget alerts, so that rules can say "the 100% alert of this budget":

``budget``           the budget id, ``team:search:day`` (from ``labels.budget`` or
                     ``evidence.budget_id`` / ``evidence.budget``)
``budget_scope``     ``team`` or ``workflow`` (the first part of the budget id)
``threshold``        the threshold crossed as a fraction, ``0.8`` (from ``labels`` or ``evidence``)
``budget_breached``  ``true`` when the threshold is 100% or more, else ``false``

Derived labels never override what the alert carries itself.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tokengov.core.contracts import Alert

__all__ = ["BUDGET_KINDS", "TASK_KINDS", "routing_labels"]

BUDGET_KINDS = frozenset({"budget_threshold", "budget_forecast"})
#: Alerts about one task; muted while the budget of their scope is breached.
TASK_KINDS = frozenset({"runaway", "retry_storm", "loop"})


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _threshold(raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    text = raw.strip()
    try:
        if text.endswith("%"):
            return Decimal(text[:-1]) / 100
        return Decimal(text)
    except InvalidOperation:
        return None


def routing_labels(alert: Alert) -> dict[str, str]:
    labels = alert.label_set()
    if alert.kind not in BUDGET_KINDS:
        return labels
    derived: dict[str, str] = {}
    budget = (
        labels.get("budget")
        or _text(alert.evidence.get("budget_id"))
        or _text(alert.evidence.get("budget"))
    )
    if budget:
        derived["budget"] = budget
        scope, _, _ = budget.partition(":")
        if scope in ("team", "workflow"):
            derived["budget_scope"] = scope
    threshold_text = labels.get("threshold") or _text(alert.evidence.get("threshold"))
    threshold = _threshold(threshold_text)
    if threshold is not None:
        derived["threshold"] = format(threshold.normalize(), "f")
        if alert.kind == "budget_threshold":
            derived["budget_breached"] = "true" if threshold >= 1 else "false"
    return {**derived, **labels}
