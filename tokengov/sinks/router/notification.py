"""What a receiver is given: one notification for one alert group, and the record of
each attempt to deliver it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from tokengov.core.contracts import Alert, UtcTimestamp

__all__ = ["AttemptResult", "Notification", "NotificationAttempt", "new_notification_id"]

AttemptResult = Literal["delivered", "failed", "dead_letter"]


def new_notification_id() -> str:
    return str(uuid.uuid4())


class Notification(BaseModel):
    """One flush of an alert group to one receiver (Alertmanager's notification).

    ``alerts`` carry their status as of the flush: an alert whose ``ends_at`` has
    passed is ``resolved``. The webhook body is :meth:`payload`."""

    model_config = ConfigDict(frozen=True)

    notification_id: str = Field(default_factory=new_notification_id)
    receiver: str
    route: str = Field(description="The route path in the policy file, e.g. routes.routes[0].")
    group_key: str
    group_labels: dict[str, str]
    reason: str = Field(description="Why it was sent: first notification, new alerts, …")
    created_at: UtcTimestamp
    alerts: list[Alert]

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if self.firing else "resolved"

    def payload(self) -> dict[str, Any]:
        """The JSON document receivers send (webhook body, dead-letter value)."""
        return {
            "version": 1,
            "notification_id": self.notification_id,
            "status": self.status,
            "receiver": self.receiver,
            "route": self.route,
            "group_key": self.group_key,
            "group_labels": self.group_labels,
            "reason": self.reason,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "alerts": [a.model_dump(mode="json") for a in self.alerts],
        }

    def body(self) -> bytes:
        return orjson.dumps(self.payload())

    def title(self) -> str:
        """``[FIRING:2] search runaway``: status, count and the group's labels."""
        count = len(self.firing) if self.status == "firing" else len(self.resolved)
        labels = " ".join(self.group_labels[k] for k in sorted(self.group_labels))
        return f"[{self.status.upper()}:{count}] {labels}".rstrip()


@dataclass(frozen=True, slots=True)
class NotificationAttempt:
    """One attempt to deliver a notification, one row per alert in it
    (ClickHouse ``notifications``)."""

    alert_id: str
    fingerprint: str
    receiver: str
    attempt: int
    result: AttemptResult
    error: str
    latency_ms: int
    ts: datetime
    notification_id: str
    group_key: str
    status: str  # the alert's status in the notification: firing | resolved
