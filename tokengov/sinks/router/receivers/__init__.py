"""Receivers: the channels teams watch. Each is a small class with ``async send(notification)``."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import httpx
from rich.console import Console

from tokengov.core.policy import EmailReceiver as EmailConfig
from tokengov.core.policy import LogReceiver as LogConfig
from tokengov.core.policy import PagerDutyReceiver as PagerDutyConfig
from tokengov.core.policy import Policy
from tokengov.core.policy import SlackReceiver as SlackConfig
from tokengov.core.policy import WebhookReceiver as WebhookConfig
from tokengov.sinks.router.receivers.base import REDACTED, Receiver, Secrets, safe_target
from tokengov.sinks.router.receivers.email import EmailReceiver, email_message
from tokengov.sinks.router.receivers.log import LogReceiver
from tokengov.sinks.router.receivers.pagerduty import PagerDutyReceiver, pagerduty_event
from tokengov.sinks.router.receivers.render import GRAFANA_DASHBOARD_UID, dashboard_url
from tokengov.sinks.router.receivers.slack import SlackReceiver, slack_message
from tokengov.sinks.router.receivers.webhook import SIGNATURE_HEADER, WebhookReceiver, sign

__all__ = [
    "GRAFANA_DASHBOARD_UID",
    "REDACTED",
    "SIGNATURE_HEADER",
    "EmailReceiver",
    "LogReceiver",
    "PagerDutyReceiver",
    "Receiver",
    "Secrets",
    "SlackReceiver",
    "WebhookReceiver",
    "build_receivers",
    "dashboard_url",
    "email_message",
    "pagerduty_event",
    "safe_target",
    "sign",
    "slack_message",
]


def build_receivers(
    policy: Policy,
    *,
    client: httpx.AsyncClient,
    env: Mapping[str, str],
    grafana_url: str | None = None,
    console: Console | None = None,
    email_ssl_context: ssl.SSLContext | None = None,
) -> dict[str, Receiver]:
    """One receiver object per entry of the policy's ``receivers``."""
    out: dict[str, Receiver] = {}
    for name, config in policy.receivers.items():
        receiver: Receiver
        if isinstance(config, WebhookConfig):
            receiver = WebhookReceiver(name, config, client, env)
        elif isinstance(config, SlackConfig):
            receiver = SlackReceiver(name, config, client, env, grafana_url=grafana_url)
        elif isinstance(config, PagerDutyConfig):
            receiver = PagerDutyReceiver(name, config, client, env, grafana_url=grafana_url)
        elif isinstance(config, EmailConfig):
            receiver = EmailReceiver(
                name, config, env, grafana_url=grafana_url, ssl_context=email_ssl_context
            )
        elif isinstance(config, LogConfig):
            receiver = LogReceiver(name, console=console, grafana_url=grafana_url)
        else:  # pragma: no cover - the policy's discriminated union is closed
            raise TypeError(f"unknown receiver type for {name!r}: {type(config).__name__}")
        out[name] = receiver
    return out
