"""``type: webhook``: the notification's JSON POSTed, signed when a secret is set.

``X-Tokengov-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` with the
secret from ``secret_env``; the receiving side recomputes it over the exact bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

import httpx

from sinks.router.notification import Notification
from sinks.router.receivers.base import Secrets, post, quiet_http_loggers
from tokengov.policy import WebhookReceiver as WebhookConfig

__all__ = ["SIGNATURE_HEADER", "WebhookReceiver", "sign"]

SIGNATURE_HEADER = "X-Tokengov-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookReceiver:
    def __init__(
        self, name: str, config: WebhookConfig, client: httpx.AsyncClient, env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.config = config
        self.client = client
        quiet_http_loggers()
        self.env = env

    async def send(self, notification: Notification) -> None:
        secrets = Secrets(self.name, self.env)
        url = self.config.url or secrets.get(self.config.url_env or "", "url_env")
        secrets.remember(url)  # a hook URL may carry a token in its path or query
        body = notification.body()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tokengov-router",
            "X-Tokengov-Notification-Id": notification.notification_id,
        }
        if self.config.secret_env:
            headers[SIGNATURE_HEADER] = sign(
                secrets.get(self.config.secret_env, "secret_env"), body
            )
        await post(
            self.client,
            url,
            content=body,
            headers=headers,
            timeout_s=self.config.timeout.total_seconds(),
            secrets=secrets,
        )
