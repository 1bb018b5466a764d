"""``type: pagerduty``: PagerDuty Events API v2.

One event per alert, ``dedup_key`` = the alert's fingerprint, so PagerDuty keeps one
incident per alert however often it is re-sent: ``trigger`` while it fires,
``resolve`` when it resolves. The endpoint (``url``) is configurable; it answers
202 when it accepted an event.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokengov.core.contracts import Alert
from tokengov.core.policy import PagerDutyReceiver as PagerDutyConfig
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.receivers.base import HttpReceiver, Secrets
from tokengov.sinks.router.receivers.render import dashboard_url, decision_text, numbers_text

__all__ = ["PagerDutyReceiver", "pagerduty_event"]

_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
_ACCEPTED_STATUS = frozenset({200, 201, 202})


def pagerduty_event(alert: Alert, routing_key: str, *, grafana_url: str | None) -> dict[str, Any]:
    if alert.status == "resolved":
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": alert.fingerprint,
        }
    details: dict[str, Any] = {
        "team": alert.team,
        "workflow": alert.workflow,
        "task_id": alert.task_id,
        "numbers": numbers_text(alert),
        "decision": decision_text(alert),
        "labels": alert.labels,
        "evidence": alert.evidence,
        "alert_id": alert.alert_id,
    }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.fingerprint,
        "payload": {
            "summary": alert.summary[:1024],
            "source": f"tokengov/{alert.team}",
            "severity": _SEVERITY[alert.severity],
            "timestamp": alert.starts_at.isoformat().replace("+00:00", "Z"),
            "component": alert.workflow or alert.team,
            "group": alert.team,
            "class": alert.kind,
            "custom_details": details,
        },
    }
    link = dashboard_url(grafana_url, alert)
    if link:
        event["links"] = [{"href": link, "text": "tokengov dashboard"}]
    return event


class PagerDutyReceiver(HttpReceiver[PagerDutyConfig]):
    async def send(self, notification: Notification) -> None:
        secrets = Secrets(self.name, self.env)
        routing_key = secrets.get(self.config.routing_key_env, "routing_key_env")
        # Triggers first, then resolves: the order a person would read them in.
        for alert in [*notification.firing, *notification.resolved]:
            event = pagerduty_event(alert, routing_key, grafana_url=self.grafana_url)
            await self.post(
                self.config.url, orjson.dumps(event), secrets, ok_status=_ACCEPTED_STATUS
            )
