"""``type: slack``: an incoming-webhook message a person can act on.

One message per notification: a header with the status and count, then for each
alert its summary and the facts (team, workflow, task, numbers, limit, decision)
and a button to the Grafana dashboard when ``TOKENGOV_GRAFANA_URL`` is set. The
``text`` field carries the same in plain words for notifications and clients
that do not render blocks.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokengov.core.contracts import Alert
from tokengov.core.policy import SlackReceiver as SlackConfig
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.receivers.base import HttpReceiver, Secrets, hook_url
from tokengov.sinks.router.receivers.render import dashboard_url, facts

__all__ = ["MAX_ALERTS_SHOWN", "SlackReceiver", "slack_message"]

MAX_ALERTS_SHOWN = 10  # Slack allows 50 blocks; keep a message readable

_ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def _alert_blocks(alert: Alert, grafana_url: str | None) -> list[dict[str, Any]]:
    icon = ":white_check_mark:" if alert.status == "resolved" else _ICON.get(alert.severity, "")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{alert.summary}*"}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts(alert)[:10]],
        },
    ]
    link = dashboard_url(grafana_url, alert)
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open dashboard"},
                        "url": link,
                    }
                ],
            }
        )
    return blocks


def _plain(alert: Alert, grafana_url: str | None) -> str:
    lines = [f"{alert.summary}"] + [f"  {k}: {v}" for k, v in facts(alert)]
    link = dashboard_url(grafana_url, alert)
    if link:
        lines.append(f"  Dashboard: {link}")
    return "\n".join(lines)


def slack_message(
    notification: Notification, *, grafana_url: str | None, channel: str | None = None
) -> dict[str, Any]:
    shown = notification.alerts[:MAX_ALERTS_SHOWN]
    header = f"{notification.title()} — {notification.reason}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}}
    ]
    for alert in shown:
        blocks.append({"type": "divider"})
        blocks.extend(_alert_blocks(alert, grafana_url))
    hidden = len(notification.alerts) - len(shown)
    if hidden > 0:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"…and {hidden} more alert(s)"}],
            }
        )
    text = "\n\n".join([header, *(_plain(a, grafana_url) for a in shown)])
    message: dict[str, Any] = {"text": text, "blocks": blocks}
    if channel:
        message["channel"] = channel
    return message


class SlackReceiver(HttpReceiver[SlackConfig]):
    async def send(self, notification: Notification) -> None:
        secrets = Secrets(self.name, self.env)
        url = hook_url(self.config.url, self.config.url_env, secrets)
        body = orjson.dumps(
            slack_message(notification, grafana_url=self.grafana_url, channel=self.config.channel)
        )
        await self.post(url, body, secrets)
