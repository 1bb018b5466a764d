"""What processing produces: alerts, decisions, metrics (plain data; the adapter publishes)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tokengov.core.contracts import Alert, Decision

__all__ = ["Output", "Suppressor"]

log = logging.getLogger(__name__)


class Suppressor:
    """Fingerprints already published (read back after a takeover); anything else passes."""

    def __init__(self, known: set[str] | None = None) -> None:
        self.known: set[str] = set(known or ())

    def __contains__(self, fingerprint: object) -> bool:
        return fingerprint in self.known

    def add(self, fingerprint: str) -> None:
        self.known.add(fingerprint)


@dataclass
class Output:
    """Accumulates what one batch produced. ``cause`` ties a decision to its alert."""

    alerts: list[Alert] = field(default_factory=list)
    decisions: list[tuple[Decision, str]] = field(default_factory=list)
    metrics: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    suppressed: int = 0
    suppressor: Suppressor = field(default_factory=Suppressor)

    def alert(self, alert: Alert, decision: Decision | None = None) -> bool:
        """Queue an alert (and the decision it causes) unless it was already published."""
        if alert.fingerprint in self.suppressor:
            self.suppressed += 1
            log.info(
                "not publishing %s again: it is already on the alerts topic", alert.fingerprint
            )
            return False
        self.suppressor.add(alert.fingerprint)
        if decision is not None:
            self.decisions.append((decision, alert.fingerprint))
        self.alerts.append(alert)
        return True

    def decide(self, decision: Decision, cause: str) -> bool:
        """Queue a decision that has no alert of its own (a budget breach)."""
        if cause in self.suppressor:
            self.suppressed += 1
            log.info("not publishing the decision of %s again: it is already published", cause)
            return False
        self.suppressor.add(cause)
        self.decisions.append((decision, cause))
        return True

    def metric(self, key: str, doc: dict[str, Any]) -> None:
        self.metrics.append((key, doc))

    def __bool__(self) -> bool:
        return bool(self.alerts or self.decisions or self.metrics)

    def clear(self) -> None:
        self.alerts.clear()
        self.decisions.clear()
        self.metrics.clear()
